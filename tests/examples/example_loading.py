"""An example script loaded as a module, for tests that call its functions:
`example = load_example(SCRIPT, "cifar_resnet")`."""
import importlib.util


def load_example(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
