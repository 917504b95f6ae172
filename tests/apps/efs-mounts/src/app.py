import pathlib

PATH = pathlib.Path("/mnt/shared/note.txt")


def write(event, context):
    PATH.write_text(event["text"])
    return {"written": len(event["text"])}


def read(event, context):
    return {"text": PATH.read_text()}
