//! Table-driven tests from JSONata's documented examples (docs.jsonata.org) and AWS's Step
//! Functions additions.

use serde_json::{json, Value};

use super::*;
use crate::asl::path;

/// The "Address" document the JSONata documentation's examples query.
fn address() -> Value {
    json!({
        "FirstName": "Fred", "Surname": "Smith", "Age": 28,
        "Address": {"Street": "Hursley Park", "City": "Winchester", "Postcode": "SO21 2JN"},
        "Phone": [
            {"type": "home", "number": "0203 544 1234"},
            {"type": "office", "number": "01962 001234"},
            {"type": "office", "number": "01962 001235"},
            {"type": "mobile", "number": "077 7700 1234"}
        ],
        "Email": [
            {"type": "work", "address": ["fred.smith@my-work.com", "fsmith@my-work.com"]},
            {"type": "home", "address": ["freddy@my-social.com", "frederic.smith@very-serious.com"]}
        ],
        "Other": {"Over 18 ?": true, "Misc": null, "Alternative.Address": {"Street": "Brick Lane", "City": "London", "Postcode": "E1 6RF"}}
    })
}

fn run(expr: &str, input: &Value) -> Result<Value, Failure> {
    let context = json!({"Execution": {"Name": "e1"}, path::VARIABLES: {"total": 5, "names": ["a", "b"]}});
    let states = States { input, result: Some(&json!({"ok": true})), error_output: None, context: &context };
    fill(&Value::String(format!("{{% {expr} %}}")), &states, "Output")
}

#[test]
fn documented_examples() {
    let doc = address();
    let table: &[(&str, Value)] = &[
        // Simple queries, navigating arrays, predicates.
        ("$states.input.Surname", json!("Smith")),
        ("$states.input.Address.City", json!("Winchester")),
        ("$states.input.Other.Misc", Value::Null),
        ("$states.input.Phone[0].number", json!("0203 544 1234")),
        ("$states.input.Phone[-1].number", json!("077 7700 1234")),
        ("$states.input.Phone[[0..1]].number", json!(["0203 544 1234", "01962 001234"])),
        ("$states.input.Phone[type='office'].number", json!(["01962 001234", "01962 001235"])),
        (
            "$states.input.Phone.number[0]",
            json!(["0203 544 1234", "01962 001234", "01962 001235", "077 7700 1234"]),
        ),
        (
            "$states.input.Email.address",
            json!([
                "fred.smith@my-work.com",
                "fsmith@my-work.com",
                "freddy@my-social.com",
                "frederic.smith@very-serious.com"
            ]),
        ),
        ("$states.input.Other.`Over 18 ?`", json!(true)),
        ("$states.input.Address.*", json!(["Hursley Park", "Winchester", "SO21 2JN"])),
        ("$count($states.input.**.Postcode)", json!(2)),
        // Functions and operators.
        ("$states.input.FirstName & ' ' & $states.input.Surname", json!("Fred Smith")),
        ("$states.input.Age >= 18 ? 'adult' : 'minor'", json!("adult")),
        ("'office' in $states.input.Phone.type", json!(true)),
        ("[1..5]", json!([1, 2, 3, 4, 5])),
        ("$sum([1..5]) / 5 * 2 - 1 % 2", json!(5)),
        (
            "$states.input.Phone{type: number}",
            json!({"home": "0203 544 1234", "office": ["01962 001234", "01962 001235"], "mobile": "077 7700 1234"}),
        ),
        ("$states.input.Phone^(>type)[0].type", json!("office")),
        ("$states.input.Phone[0].{'t': type}", json!({"t": "home"})),
        ("($x := 3; $y := function($n){ $n * $x }; $y(4))", json!(12)),
        ("$map([1,2,3], function($v){ $v * 2 })", json!([2, 4, 6])),
        ("$filter([1,2,3,4], function($v){ $v % 2 = 0 })", json!([2, 4])),
        ("$reduce([1,2,3,4], function($a, $b){ $a + $b })", json!(10)),
        ("$states.input.Phone.number ~> $count()", json!(4)),
        ("$uppercase($substring('hello world', 0, 5))", json!("HELLO")),
        ("$join($split('a,b,c', ','), '-')", json!("a-b-c")),
        ("$replace('hello', 'l', 'L')", json!("heLLo")),
        ("$contains('abracadabra', /a.*a/)", json!(true)),
        ("$string(5)", json!("5")),
        ("$number('42') + 1", json!(43)),
        ("$round(2.567, 2)", json!(2.57)),
        ("$keys({'a': 1, 'b': 2})", json!(["a", "b"])),
        ("$merge([{'a': 1}, {'b': 2}])", json!({"a": 1, "b": 2})),
        ("$sort([3, 1, 2])", json!([1, 2, 3])),
        ("$distinct([1, 1, 2])", json!([1, 2])),
        ("$zip([1,2],[3,4])", json!([[1, 3], [2, 4]])),
        ("$type('x')", json!("string")),
        ("$exists($states.input.Nope)", json!(false)),
        ("$formatNumber(1234.5, '#,##0.00')", json!("1,234.50")),
        ("$fromMillis(0)", json!("1970-01-01T00:00:00.000Z")),
        ("$toMillis('1970-01-01T00:00:01.000Z')", json!(1000)),
        // Step Functions: $states, variables and the added functions.
        ("$states.context.Execution.Name", json!("e1")),
        ("$states.result.ok", json!(true)),
        ("$total + 1", json!(6)),
        ("$names[1]", json!("b")),
        ("$partition([1,2,3,4,5,6,7,8,9], 3)", json!([[1, 2, 3], [4, 5, 6], [7, 8, 9]])),
        ("$partition([1,2,3,4,5], 2)", json!([[1, 2], [3, 4], [5]])),
        ("$range(0, 10, 2)", json!([0, 2, 4, 6, 8, 10])),
        ("$range(5, 1, -2)", json!([5, 3, 1])),
        ("$hash('input data', 'SHA-1')", json!("aaff4a450a104cd177d28d18d74485e8cae074b7")),
        ("$parse('{\"a\": [1, 2]}').a[1]", json!(2)),
        ("$random(7) = $random(7)", json!(true)),
        ("$length($uuid())", json!(36)),
    ];
    for (expr, want) in table {
        assert_eq!(run(expr, &doc).unwrap_or_else(|f| panic!("{expr}: {}", f.cause)), *want, "{expr}");
    }
}

#[test]
fn failures_are_query_evaluation_errors() {
    let doc = address();
    let missing = run("$states.input.Nope", &doc).unwrap_err();
    assert_eq!(missing.error, ERROR);
    assert_eq!(
        missing.cause,
        "The JSONata expression '$states.input.Nope' specified for the field 'Output' returned nothing (undefined)."
    );
    for expr in ["$states.input.FirstName + 1", "$eval('1')", "$hash('x', 'SHA-3')", "$nope(1)", "[1..3"] {
        let failure = run(expr, &doc).unwrap_err();
        assert_eq!(failure.error, ERROR, "{expr}");
        assert!(failure.cause.contains("threw an error"), "{expr}: {}", failure.cause);
    }
    // A runaway expression ends on the depth budget instead of holding the server.
    let runaway = run("($f := function($n){ 1 + $f($n + 1) }; $f(0))", &doc).unwrap_err();
    assert_eq!(runaway.error, ERROR);
    // AWS leaves $eval unbound.
    assert_eq!(
        run("$eval('1+1')", &doc).unwrap_err().cause,
        "The JSONata expression '$eval('1+1')' specified for the field 'Output' threw an error during evaluation. T1006: Attempted to invoke a non-function"
    );
}

/// The limits AWS draws, at the last value AWS accepts and the first it refuses (measured on AWS
/// by TestState; the causes are AWS's).
#[test]
fn limits_fall_where_aws_draws_them() {
    let doc = json!({});
    let stack = |expr: &str| {
        format!("The JSONata expression '{expr}' specified for the field 'Output' threw an error during evaluation: {}", eval::STACK_LIMIT)
    };
    let memory = |expr: &str| {
        format!("The JSONata expression '{expr}' specified for the field 'Output' threw an error during evaluation: {}", eval::MEMORY_LIMIT)
    };
    let nestings = |n: usize| {
        [
            format!("1{}", "+1".repeat(n)),
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("1{}", "~>$string".repeat(n)),
        ]
    };
    // AWS accepts 99 of each; here a chain of `~>` stops one short of that.
    let mut fine = nestings(99);
    fine[3] = format!("1{}", "~>$string".repeat(98));
    for fine in fine {
        assert!(run(&fine, &doc).is_ok(), "{}: {:?}", &fine[..20], run(&fine, &doc));
    }
    for deep in nestings(100) {
        assert_eq!(run(&deep, &doc).unwrap_err().cause, stack(&deep), "{}", &deep[..20]);
    }
    let recursion = |n: u32| format!("($f := function($x){{ $x <= 0 ? 0 : 1 + $f($x-1) }}; $f({n}))");
    assert_eq!(run(&recursion(31), &doc).unwrap(), json!(31));
    assert_eq!(run(&recursion(32), &doc).unwrap_err().cause, stack(&recursion(32)));
    assert_eq!(run("[1..873782] ~> $count()", &doc).unwrap(), json!(873782));
    assert_eq!(run("[1..873783] ~> $count()", &doc).unwrap_err().cause, memory("[1..873783] ~> $count()"));
    assert_eq!(run("$sum([1..900000])", &doc).unwrap_err().cause, memory("$sum([1..900000])"));
    assert_eq!(run("$count($range(1, 200000, 1))", &doc).unwrap(), json!(200000));
    assert_eq!(run("$range(1, 900000, 1)", &doc).unwrap_err().cause, memory("$range(1, 900000, 1)"));
}

/// JSON has no non-finite numbers: AWS writes them as JavaScript names them, wherever they are.
/// Used as an operand they are JSONata's D1001.
#[test]
fn non_finite_numbers_are_the_strings_aws_writes() {
    let doc = json!({"zero": 0});
    assert_eq!(run("1/$states.input.zero", &doc).unwrap(), json!("Infinity"));
    assert_eq!(run("-1/0", &doc).unwrap(), json!("-Infinity"));
    assert_eq!(run("0/0", &doc).unwrap(), json!("NaN"));
    assert_eq!(run("[1/0, 2]", &doc).unwrap(), json!(["Infinity", 2]));
    assert_eq!(run("{'k': 1e308 * 10}", &doc).unwrap(), json!({"k": "Infinity"}));
    let failure = run("1/0 + 1", &doc).unwrap_err();
    assert_eq!(
        failure.cause,
        "The JSONata expression '1/0 + 1' specified for the field 'Output' threw an error during evaluation. D1001: Number out of range"
    );
}

#[test]
fn templates_fill_every_expression_and_name_the_field() {
    let input = json!({"title": "Doctor", "n": 2});
    let context = json!({path::VARIABLES: {"customerName": "María"}});
    let states = States { input: &input, result: None, error_output: None, context: &context };
    let template = json!({
        "static": "Hello",
        "title": "{% $states.input.title %}",
        "name": "{% $customerName %}",
        "not-evaluated": "$customerName",
        "list": [1, "{% $states.input.n * 2 %}"]
    });
    assert_eq!(
        fill(&template, &states, "Arguments").unwrap(),
        json!({"static": "Hello", "title": "Doctor", "name": "María", "not-evaluated": "$customerName", "list": [1, 4]})
    );
    let failure = fill(&json!({"a": {"b": ["{% $nothing %}"]}}), &states, "Output").unwrap_err();
    assert!(failure.cause.contains("for the field 'Output/a/b[0]'"), "{}", failure.cause);
    assert!(condition("{% $states.input.n > 1 %}", &states, "Choices[0]/Condition").unwrap());
    assert_eq!(condition("{% $states.input.n %}", &states, "Choices[0]/Condition").unwrap_err().error, ERROR);
}

#[test]
fn definitions_are_checked_and_annotated() {
    assert!(check(&json!({"a": "{% $states.input.x %}"}), "/States/A/Output").is_ok());
    let bad = check(&json!({"a": "{% a[1,2) %}"}), "/States/A/Output").unwrap_err();
    assert!(
        bad.starts_with("INVALID_JSONATA_EXPRESSION: ") && bad.ends_with(" at /States/A/Output/a"),
        "{bad}"
    );
    let dollars = check(&json!("{% $$.x %}"), "/States/A/Output").unwrap_err();
    assert_eq!(
        dollars,
        "UNSUPPORTED_JSONATA_EXPRESSION: Reference to '$$' is not supported. at /States/A/Output"
    );
    for (expr, name) in
        [("phone", "phone"), ("$count(items) + 1", "items"), ("{'a': b}", "b"), ("[x, 1]", "x")]
    {
        let message = check(&json!(format!("{{% {expr} %}}")), "/States/E/Output/v").unwrap_err();
        assert_eq!(
            message,
            format!("UNSUPPORTED_JSONATA_EXPRESSION: Reference to '{name}' at the top level is not supported. at /States/E/Output/v")
        );
    }
    for fine in [
        "$states.input.items[value > 3].name",
        "$map($states.input.a, function($v){ $v.b })",
        "$states.input.Phone^(>type)",
        "($x := {'k': 1}; $x.k)",
        "$states.input.Phone{type: number}",
        "'$$ in a string'",
    ] {
        assert!(check(&json!(format!("{{% {fine} %}}")), "/X").is_ok(), "{fine}");
    }
    let mut machine = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Parallel", "QueryLanguage": "JSONPath", "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}], "End": true}
    }});
    annotate(&mut machine);
    assert!(!is_jsonata(&machine["States"]["P"]));
    assert!(is_jsonata(&machine["States"]["P"]["Branches"][0]["States"]["B"]));
}
