def greet(name):
    return f"hello {name} from the layer"
