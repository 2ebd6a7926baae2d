"""The Python module is typed: it ships py.typed, every public function, method and property has annotations for
all its parameters and its return value, and every public property has a docstring. The public names live in the
package's modules (mistral.model, mistral.session, ...) and are re-exported by mistral/__init__.py."""
import inspect
import os

import mistral


def _ours(module):
    return module == "mistral" or module.startswith("mistral.")


def public_members():
    for name in mistral.__all__:
        obj = getattr(mistral, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                if inspect.isfunction(value) or isinstance(value, property):
                    yield f"{name}.{attr}", value
            for base in obj.__mro__[1:]:
                if _ours(base.__module__):
                    for attr, value in vars(base).items():
                        if not attr.startswith("_") and (inspect.isfunction(value) or isinstance(value, property)):
                            yield f"{base.__name__}.{attr}", value


def test_py_typed_is_shipped():
    assert os.path.exists(os.path.join(os.path.dirname(mistral.__file__), "py.typed"))


def test_every_public_name_is_annotated():
    missing = []
    for name, obj in public_members():
        fn = obj.fget if isinstance(obj, property) else obj
        if fn is None or not _ours(fn.__module__):
            continue
        sig = inspect.signature(fn)
        for p in sig.parameters.values():
            if p.name in ("self", "cls"):
                continue
            if p.annotation is inspect.Parameter.empty:
                missing.append(f"{name}({p.name})")
        if sig.return_annotation is inspect.Signature.empty and not name.endswith("__init__"):
            missing.append(f"{name} -> ?")
    assert not missing, missing
    checked = [name for name, obj in public_members()
               if _ours((obj.fget if isinstance(obj, property) else obj).__module__)]
    assert len(checked) > 50, checked  # the check above really looked at the split modules' members
    assert isinstance(mistral.library_path, str) and mistral.library_path


def test_every_public_property_has_a_docstring():
    undocumented = [name for name, obj in public_members() if isinstance(obj, property) and not (obj.__doc__ or "").strip()]
    assert not undocumented, undocumented


def test_memory_estimate_fields():
    assert mistral.MemoryEstimate._fields == ("weights_bytes", "kv_bytes_per_position", "n_ctx", "kv_bytes",
                                              "scratch_bytes", "other_bytes", "total_bytes")
