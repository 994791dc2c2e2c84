"""PyInstaller hook for bitsandbytes, used instead of pyinstaller-hooks-contrib's.

That hook collects the kernels for every CUDA, ROCm and XPU version bitsandbytes
ships (~140 MB), and binary analysis then warns about each GPU library a CPU
build lacks. This one collects only the variants build_installer.py names in
``hooksconfig={"bitsandbytes": {"variants": [...]}}``: ``cpu``, plus e.g.
``cuda128`` for a torch built with CUDA 12.8. Without that setting it collects
everything, like the contrib hook.
"""

from pathlib import Path

from PyInstaller.utils.hooks import collect_dynamic_libs, get_hook_config

module_collection_mode = "pyz+py"  # as the contrib hook


def kernel_variant(library: str) -> str:
    """'.../libbitsandbytes_cuda128.so' -> 'cuda128' (also .dll, .dylib)."""
    return Path(library).name.removeprefix("libbitsandbytes_").split(".")[0]


def hook(hook_api) -> None:
    libraries = collect_dynamic_libs("bitsandbytes")
    variants = get_hook_config(hook_api, "bitsandbytes", "variants")
    if variants is not None:
        libraries = [(src, dest) for src, dest in libraries if kernel_variant(src) in variants]
    hook_api.add_binaries(libraries)
