VERSION = "v1"


def handler(event, context):
    return {"version": VERSION}
