/**
 * nimbus Node.js runtime client (embedded in the nimbus binary).
 *
 * nimbus starts this CommonJS file once per execution environment as
 *
 *     node <runtime dir>/bootstrap.js          (cwd = function code dir)
 *
 * and it then behaves like AWS's Node runtime client
 * (aws-lambda-nodejs-runtime-interface-client): it loads the module named by
 * _HANDLER (CommonJS via require, ES modules via import()), patches console
 * the same way, and loops on the Lambda Runtime API at
 * http://$AWS_LAMBDA_RUNTIME_API/2018-06-01.
 *
 * Environment read here:
 *   AWS_LAMBDA_RUNTIME_API     host:port of the Runtime API (default 127.0.0.1:9001)
 *   _HANDLER                   "index.handler", "src/app.handler", "mod.obj.fn"
 *   LAMBDA_TASK_ROOT           code dir the handler path is relative to (default: cwd)
 *   AWS_LAMBDA_LOG_LEVEL       optional console level filter (TRACE..FATAL), as AWS
 *   AWS_LAMBDA_FUNCTION_NAME / _VERSION / _MEMORY_SIZE, AWS_LAMBDA_LOG_GROUP_NAME,
 *   AWS_LAMBDA_LOG_STREAM_NAME copied into the context object
 */

'use strict';

const fs = require('fs');
const path = require('path');
const http = require('http');
const util = require('util');
const { pathToFileURL } = require('url');

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

// ---------------------------------------------------------------------------
// Output: everything must be in the pipe before a response is posted
// ---------------------------------------------------------------------------
//
// nimbus drains the process's output right after it receives the response to
// build the log tail. process.stdout/stderr writes to a pipe are asynchronous
// on Linux (queued in the stream until the event loop flushes them), so they
// could arrive after the response. Hence:
//  - the patched console writes with fs.writeSync (data is in the pipe when
//    console.log returns);
//  - process.stdout/stderr, which node creates lazily on first access, are
//    switched to blocking writes when created, so direct
//    process.stdout.write() calls by user code are synchronous as well.
//    Wrapping the lazy getters keeps start-up free of the cost of creating
//    the streams for functions that never touch them.

for (const name of ['stdout', 'stderr']) {
  const descriptor = Object.getOwnPropertyDescriptor(process, name);
  if (!descriptor || typeof descriptor.get !== 'function' || !descriptor.configurable) continue;
  let made = false;
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: descriptor.enumerable,
    get() {
      const stream = descriptor.get.call(process);
      if (!made) {
        made = true;
        const handle = stream && stream._handle;
        if (handle && typeof handle.setBlocking === 'function') handle.setBlocking(true);
      }
      return stream;
    },
  });
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, text) {
  const buffer = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(fd, buffer, offset);
    } catch (err) {
      // EAGAIN only if some other code made the fd non-blocking: back off 1 ms.
      if (err.code === 'EAGAIN') Atomics.wait(sleepCell, 0, 0, 1);
      else return; // EPIPE etc.: logging must never break the function
    }
  }
}

// ---------------------------------------------------------------------------
// console patch (same line format and level filter as AWS's LogPatch)
// ---------------------------------------------------------------------------

// Request id shown in log lines. Before the first invocation AWS prints the
// literal "undefined", and after one it keeps showing the last id.
let currentRequestId;

const LEVELS = {
  TRACE: 1,
  DEBUG: 2,
  INFO: 3,
  WARN: 4,
  ERROR: 5,
  FATAL: 6,
};

function patchConsole() {
  const minimum = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] || LEVELS.TRACE;
  const make = (level) => {
    if (LEVELS[level] < minimum) return () => {};
    return (message, ...params) => {
      // AWS also replaces "\n" with "\r" when logging to stdout (so that
      // CloudWatch keeps one event); a local log tail wants real newlines.
      writeAll(
        1,
        `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${util.format(message, ...params)}\n`,
      );
    };
  };
  console.trace = make('TRACE'); // AWS's patch: no stack, just a TRACE line
  console.debug = make('DEBUG');
  console.info = make('INFO');
  console.log = console.info;
  console.warn = make('WARN');
  console.error = make('ERROR');
  console.fatal = make('FATAL');
}

// ---------------------------------------------------------------------------
// Errors (names, messages and JSON shape as AWS's Errors.js)
// ---------------------------------------------------------------------------

function runtimeError(name) {
  const cls = class extends Error {};
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}
const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
const NodeJsExit = runtimeError('NodeJsExit');
const NODEJS_EXIT_MESSAGE =
  'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled. For more information, see https://nodejs.org/docs/latest/api/process.html#exit-codes';
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function isErrorLike(obj) {
  return (
    obj &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string' &&
    obj.name &&
    obj.message &&
    obj.stack
  );
}

/** Body posted to /error and /init/error ("trace", not "stackTrace", in Node). */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: String(error.stack).split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** "\t{json}" with name/message/stack made enumerable, as AWS logs errors. */
function toFormatted(error) {
  const withEnumerable = (_key, value) => {
    if (value instanceof Error) {
      const ret = Object.assign(
        { errorType: value.name, errorMessage: value.message, code: value.code },
        value,
      );
      if (typeof value.stack === 'string') ret.stack = value.stack.split('\n');
      return ret;
    }
    return value;
  };
  try {
    return '\t' + JSON.stringify(error, withEnumerable);
  } catch (_) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

function logError(label, err) {
  console.error(label, toFormatted(intoError(err)));
}

// ---------------------------------------------------------------------------
// Runtime API client: built-in http with a single keep-alive socket
// ---------------------------------------------------------------------------

const apiAddress = process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001';
const apiColon = apiAddress.lastIndexOf(':');
const apiHost = apiAddress.slice(0, apiColon).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
const apiPort = parseInt(apiAddress.slice(apiColon + 1), 10);
// One persistent connection, as AWS's client. Idle keep-alive sockets are
// unref'd by the agent, so they don't keep the event loop alive ('beforeExit'
// still fires for callback-style handlers that never call back).
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

// Sockets that already have the catch-all error listener below.
const guardedSockets = new WeakSet();
const ignoreSocketError = () => {};

function apiRequest(method, apiPath, body, headers, isRetry) {
  return new Promise((resolve, reject) => {
    const options = { hostname: apiHost, port: apiPort, method, path: API_PREFIX + apiPath, agent };
    if (body !== undefined) {
      options.headers = Object.assign({ 'Content-Length': Buffer.byteLength(body) }, headers);
    }
    let responded = false;
    const req = http.request(options, (res) => {
      responded = true;
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('socket', (socket) => {
      // If the API answers early and drops the connection while the body is
      // still being written (413 for an oversized response), the write error
      // can surface on the socket after the request is done with it; without
      // a listener it would be an uncaught exception and kill the runtime.
      // Request-level failures still arrive through req's 'error' below.
      if (!guardedSockets.has(socket)) {
        guardedSockets.add(socket);
        socket.on('error', ignoreSocketError);
      }
    });
    req.on('error', (err) => {
      // A kept-alive socket the server had already closed: retry a GET once on
      // a fresh connection (node's documented pattern). POSTs are never
      // re-sent: the API may have acted on them (e.g. answered 413 to an
      // oversized response and dropped the connection mid-body).
      if (responded) return;
      if (!isRetry && method === 'GET' && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        resolve(apiRequest(method, apiPath, body, headers, true));
      } else {
        reject(err);
      }
    });
    req.end(body);
  });
}

async function post(apiPath, bodyString, headers) {
  let res;
  try {
    res = await apiRequest('POST', apiPath, bodyString, headers);
  } catch (err) {
    // E.g. a response over the 6 MB limit: the API answers 413 and drops the
    // connection while we are still sending. The invocation is settled on the
    // API's side either way; the next GET reconnects (and exits if the API is
    // really gone).
    writeAll(2, `nimbus runtime: POST ${apiPath} failed: ${err.message}\n`);
    return;
  }
  if (res.status >= 500) {
    // Container error per the spec: non-recoverable, exit promptly.
    writeAll(2, `nimbus runtime: POST ${apiPath} -> ${res.status}, exiting\n`);
    process.exit(1);
  }
  if (res.status >= 300) {
    writeAll(2, `nimbus runtime: POST ${apiPath} -> ${res.status}: ${res.body.toString('utf8', 0, 500)}\n`);
  }
}

function postInitError(error) {
  const response = toRapidResponse(error);
  return post('/init/error', JSON.stringify(response), {
    'Content-Type': 'application/json',
    [ERROR_TYPE_HEADER]: response.errorType,
  });
}

function postInvocationError(requestId, error) {
  return post(`/invocation/${encodeURIComponent(requestId)}/error`, JSON.stringify(toRapidResponse(error)), {
    'Content-Type': 'application/json',
    [ERROR_TYPE_HEADER]: 'Unhandled',
  });
}

// ---------------------------------------------------------------------------
// Handler loading (resolution order of AWS's UserFunction.js, minus TypeScript)
// ---------------------------------------------------------------------------

/** Nearest package.json decides whether .js is an ES module (stop at node_modules). */
function hasPackageJsonTypeModule(folder) {
  for (;;) {
    if (folder.endsWith('/node_modules')) return false;
    const pj = path.join(folder, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(pj, 'utf8'));
        return Boolean(pkg) && pkg.type === 'module';
      } catch (e) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) return false;
    folder = parent;
  }
}

function tryRequireFile(file, extension = '') {
  const p = file + extension;
  return fs.existsSync(p) ? require(p) : undefined;
}

async function tryImportFile(file, extension) {
  const p = file + extension;
  return fs.existsSync(p) ? await import(pathToFileURL(p).href) : undefined;
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const lambdaStylePath = path.resolve(appRoot, moduleRoot, moduleName);

  const extensionless = tryRequireFile(lambdaStylePath);
  if (extensionless) return extensionless;

  const isModule = hasPackageJsonTypeModule(path.dirname(lambdaStylePath));
  if (!isModule) {
    const cjs = tryRequireFile(lambdaStylePath, '.js');
    if (cjs) return cjs;
  }
  const loaded =
    (isModule && (await tryImportFile(lambdaStylePath, '.js'))) ||
    (await tryImportFile(lambdaStylePath, '.mjs')) ||
    tryRequireFile(lambdaStylePath, '.cjs');
  if (loaded) return loaded;

  // Last resort, as AWS: node-style resolution (node_modules, directories).
  // When nothing is found this throws the familiar
  // "Cannot find module 'index'\nRequire stack:\n- .../bootstrap.js".
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandlerString) {
  if (fullHandlerString.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  // "src/app.handler" -> moduleRoot "src/", "app.handler"
  const handlerString = path.basename(fullHandlerString);
  const moduleRoot = fullHandlerString.substring(0, fullHandlerString.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;

  let app;
  try {
    app = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e && e.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(e);
    throw e; // anything else (including ESM's ERR_MODULE_NOT_FOUND) as is, like AWS
  }

  const handler = handlerPath.split('.').reduce((obj, key) => obj && obj[key], app);
  if (!handler) throw new HandlerNotFound(`${fullHandlerString} is undefined or not exported`);
  if (typeof handler !== 'function') throw new HandlerNotFound(`${fullHandlerString} is not a function`);
  return handler;
}

// ---------------------------------------------------------------------------
// Invocation
// ---------------------------------------------------------------------------

// The invocation in flight, so uncaught exceptions can be reported against it.
let active = null;

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

/**
 * Run the handler once. Resolves with {error} or {result}, whichever of these
 * happens first: the returned promise settles; callback / context.done /
 * succeed / fail is called; or the event loop empties ('beforeExit') while a
 * non-async handler has not called back (AWS then responds null; an async
 * handler whose promise never settles gets Runtime.NodeJsExit).
 *
 * callbackWaitsForEmptyEventLoop is accepted but treated as false: a
 * callback's result is posted immediately instead of after the event loop
 * drains.
 */
function invoke(handler, isAsync, requestId, headers, body) {
  return new Promise((resolve) => {
    let finished = false;
    const finish = (outcome) => {
      if (finished) return;
      finished = true;
      process.removeListener('beforeExit', onBeforeExit);
      resolve(outcome);
    };
    const onBeforeExit = () => {
      finish(isAsync ? { error: new NodeJsExit(NODEJS_EXIT_MESSAGE) } : { result: null });
    };
    active = { requestId, finish };

    const done = (err, result) => {
      if (err !== undefined && err !== null) finish({ error: err });
      else finish({ result });
    };
    let waitsForEmptyEventLoop = true;
    const deadline = Number(headers['lambda-runtime-deadline-ms']) || Date.now() + 900000;
    process.on('beforeExit', onBeforeExit);
    try {
      const context = {
        get callbackWaitsForEmptyEventLoop() {
          return waitsForEmptyEventLoop;
        },
        set callbackWaitsForEmptyEventLoop(value) {
          waitsForEmptyEventLoop = value;
        },
        succeed: (result) => done(null, result),
        fail: (err) => done(err === undefined || err === null ? 'handled' : err, null),
        done,
        functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, // a string on AWS too
        logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
        identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: requestId,
        getRemainingTimeInMillis: () => deadline - Date.now(), // not clamped, as AWS
      };
      const event = JSON.parse(body);
      const result = handler(event, context, done);
      if (result && typeof result.then === 'function') {
        // A rejection with no reason is reported as the string "handled", as AWS.
        result.then(
          (value) => done(null, value),
          (err) => done(err === undefined || err === null ? 'handled' : err, null),
        );
      }
      // A plain (non-promise) return value is ignored, exactly as on AWS: sync
      // handlers answer through the callback, or null when the loop empties.
    } catch (err) {
      done(err);
    }
  });
}

async function runLoop(handler) {
  const isAsync = Boolean(handler.constructor && handler.constructor.name === 'AsyncFunction');
  for (;;) {
    const next = await apiRequest('GET', '/invocation/next');
    if (next.status !== 200) {
      writeAll(2, `nimbus runtime: GET invocation/next -> ${next.status}, exiting\n`);
      process.exit(1);
    }
    const headers = next.headers; // node lower-cases header names
    const requestId = headers['lambda-runtime-aws-request-id'];
    currentRequestId = requestId;
    if (headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
    else delete process.env._X_AMZN_TRACE_ID;

    const outcome = await invoke(handler, isAsync, requestId, headers, next.body.toString('utf8'));
    active = null;
    if (outcome.fatal) return; // fatal() reports it and exits the process

    let error = outcome.error;
    let payload;
    if (!('error' in outcome)) {
      try {
        payload = JSON.stringify(outcome.result === undefined ? null : outcome.result);
      } catch (_) {
        error = new Error('Unable to stringify response body'); // circular, BigInt, ...
      }
    }
    if (error !== undefined) {
      logError('Invoke Error', error);
      await postInvocationError(requestId, error);
    } else {
      await post(`/invocation/${encodeURIComponent(requestId)}/response`, payload, {
        'Content-Type': 'application/json',
      });
    }
  }
}

let initDone = false;
let dying = false;

// An exception nobody catches: report it against the invocation in flight
// (or as the init error) and exit, as AWS does (exit codes 129 / 128).
// Between invocations there is nothing to report it against: just exit, and
// nimbus sees the process die.
function fatal(label, error, exitCode) {
  logError(label, error);
  if (dying) return;
  dying = true;
  const current = active;
  active = null;
  let report = Promise.resolve();
  if (current) {
    current.finish({ fatal: true }); // the loop must not post a second time
    report = postInvocationError(current.requestId, error);
  } else if (!initDone) {
    report = postInitError(error);
  }
  report.then(
    () => process.exit(exitCode),
    () => process.exit(exitCode),
  );
}

async function main() {
  patchConsole();
  process.on('uncaughtException', (error) => fatal('Uncaught Exception', error, 129));
  process.on('unhandledRejection', (reason, promise) =>
    fatal('Unhandled Promise Rejection', new UnhandledPromiseRejection(reason, promise), 128),
  );

  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  let handler;
  try {
    handler = await loadHandler(appRoot, process.env._HANDLER || '');
  } catch (err) {
    // Init failures: logged and posted to /init/error exactly like AWS's
    // top-level 'Uncaught Exception' path, then exit.
    fatal('Uncaught Exception', err, 129);
    return;
  }
  initDone = true;
  await runLoop(handler);
}

main().catch((err) => {
  // Runtime API unreachable (nimbus gone) or a bug in this file.
  writeAll(2, `nimbus runtime: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
