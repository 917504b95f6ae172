import helpers


def handler(event, context):
    return {"greeting": helpers.greet(event.get("name", "world"))}
