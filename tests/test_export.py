"""ONNX export of the FOMM family (``reanimate export``) and the onnxruntime backend of
``reanimate animate``; the closed-form 2x2 inverse that makes the generator exportable."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_CONFIG, randomize
from media import make_image, make_video

from reanimate.cli import main
from reanimate.geometry import compose_jacobians
from reanimate.geometry.affine import inverse_2x2
from reanimate.io import list_frame_files, read_image
from reanimate.models import ModelConfig, build_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from reanimate.export import read_manifest  # noqa: E402
from reanimate.export.onnx import OPSET, TOLERANCE, export_model  # noqa: E402
from reanimate.export.runtime import OnnxFommModel  # noqa: E402

# --- the closed-form inverse (geometry/affine.py) -------------------------------------------


def test_inverse_2x2_hand_computed():
    matrix = torch.tensor([[2.0, 1.0], [4.0, 3.0]])  # det 2
    assert torch.equal(inverse_2x2(matrix), torch.tensor([[1.5, -0.5], [-2.0, 1.0]]))


@pytest.mark.parametrize("shape", [(2, 2), (7, 2, 2), (3, 10, 2, 2), (2, 1, 5, 2, 2)])
def test_inverse_2x2_equals_linalg_inv_for_any_batch_shape(shape):
    g = torch.Generator().manual_seed(0)
    matrix = torch.eye(2) + 0.5 * torch.randn(shape, generator=g)
    assert inverse_2x2(matrix).shape == shape
    torch.testing.assert_close(inverse_2x2(matrix), torch.linalg.inv(matrix), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inverse_2x2(matrix.double()), torch.linalg.inv(matrix.double()))


def test_compose_jacobians_is_unchanged_by_the_closed_form():
    g = torch.Generator().manual_seed(1)
    source, driving = (torch.eye(2) + 0.3 * torch.randn(4, 10, 2, 2, generator=g) for _ in range(2))
    torch.testing.assert_close(compose_jacobians(source, driving), source @ torch.inverse(driving))
    # 3x3 maps (3-D keypoints) still go through torch.linalg.inv
    source3, driving3 = (torch.eye(3) + 0.3 * torch.randn(2, 3, 3, 3, generator=g) for _ in range(2))
    torch.testing.assert_close(compose_jacobians(source3, driving3), source3 @ torch.inverse(driving3))


# --- round trips ----------------------------------------------------------------------------


def motrans_config() -> ModelConfig:
    """The tiny config with the motion transformer (stem backbone), U-Net skips and a
    background predictor (left out of the export: animation keeps the background still)."""
    doc = yaml.safe_load(TINY_CONFIG)
    params = doc["model_params"]
    params["motion_estimator"] = "transformer"
    params["kp_detector_params"] = {"backbone": "stem", "dim": 32, "depth": 2, "heads": 4}
    params["generator_params"]["skips"] = True
    params["bg_predictor_params"] = {"block_expansion": 8, "max_features": 32, "num_blocks": 3}
    return ModelConfig.from_dict(doc, name="tiny-motrans")


@pytest.fixture(scope="module")
def fomm_export(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("export") / "fomm"
    return export_model(copy.deepcopy(tiny_model), out, "tiny.safetensors")


def test_fomm_round_trip_within_tolerance_and_manifest(fomm_export, tiny_model):
    result = fomm_export
    assert set(result.max_abs_diff) == {"keypoints", "source_encoder", "generator"}
    assert max(result.max_abs_diff.values()) <= TOLERANCE
    manifest = read_manifest(result.output)
    assert manifest.opset == OPSET == 17 and manifest.jacobians
    assert manifest.config.image_size == (64, 64) and manifest.info["checkpoint"] == "tiny.safetensors"
    doc = json.loads((result.output / "manifest.json").read_text())
    assert doc["format"] == "reanimate.fomm.onnx" and doc["torch"] == torch.__version__
    generator = doc["graphs"]["generator"]
    assert [s["name"] for s in generator["inputs"]] == [
        "features",
        "motion_input",
        "kp_source",
        "jacobian_source",
        "kp_driving",
        "jacobian_driving",
    ]
    assert generator["outputs"][0] == {"name": "prediction", "shape": ["batch", 3, 64, 64]}
    assert sorted(p.name for p in result.output.iterdir()) == [
        "generator.onnx",
        "keypoints.onnx",
        "manifest.json",
        "source_encoder.onnx",
    ]
    assert not [p for p in result.output.parent.iterdir() if p.name.startswith(".")]  # no temporaries

    # Any number of driving frames (the traced batch was 2): the runtime against PyTorch.
    runtime = OnnxFommModel(result.output)
    g = torch.Generator().manual_seed(5)
    source, driving = torch.rand(1, 3, 64, 64, generator=g), torch.rand(5, 3, 64, 64, generator=g)
    with torch.no_grad():
        kp_source, kp_driving = tiny_model.kp_detector(source), tiny_model.kp_detector(driving)
        expected = tiny_model.generator.decode(tiny_model.generator.encode(source), kp_driving, kp_source)
    got_kp = runtime.detect(driving)
    torch.testing.assert_close(got_kp.value, kp_driving.value, rtol=0, atol=1e-4)
    torch.testing.assert_close(got_kp.jacobian, kp_driving.jacobian, rtol=0, atol=1e-4)
    prediction, occlusion = runtime.generate(runtime.encode(source), kp_source, kp_driving)
    torch.testing.assert_close(prediction, expected.prediction, rtol=0, atol=1e-4)
    torch.testing.assert_close(occlusion, expected.occlusion_map, rtol=0, atol=1e-4)


def test_motion_transformer_with_skips_round_trip(tmp_path):
    model = randomize(build_model(motrans_config(), seed=0)).eval()
    result = export_model(model, tmp_path / "motrans")
    assert max(result.max_abs_diff.values()) <= TOLERANCE
    manifest = read_manifest(result.output)
    assert manifest.config.motion_estimator == "transformer"
    assert manifest.graphs["source_encoder"].output_names == ["features", "motion_input", "skip0", "skip1"]
    assert manifest.graphs["generator"].input_names[0] == "source"  # the skips blend in the warped source


def test_a_failed_check_writes_nothing(tmp_path, tiny_model):
    with pytest.raises(Exception, match="differs from PyTorch's.*nothing written"):
        export_model(copy.deepcopy(tiny_model), tmp_path / "out", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


# --- animate --backend onnxruntime ------------------------------------------------------------


def test_animate_with_onnxruntime_gives_the_torch_frames(tmp_path, fomm_export, tiny_checkpoint, capsys):
    source = make_image(tmp_path / "source.png", size=(64, 64))
    driving = make_video(tmp_path / "driving.mp4", num_frames=5, size=(64, 64))
    frames = {}
    for backend, weights in (("torch", tiny_checkpoint), ("onnxruntime", fomm_export.output)):
        out = tmp_path / backend
        args = ["animate", str(source), str(driving), "-o", str(out), "--checkpoint", str(weights), "-q"]
        assert main([*args, "--backend", backend, "--batch-size", "2"]) == 0, capsys.readouterr().err
        frames[backend] = np.stack([read_image(p) for p in list_frame_files(out)]).astype(int)
    assert frames["torch"].shape == (5, 64, 64, 3)
    assert np.abs(frames["torch"] - frames["onnxruntime"]).max() <= 1  # uint8 rounding of equal floats


# --- errors: one line, exit 2, nothing written ------------------------------------------------


def one_line_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reanimate: error: ") and "\n" not in err, err
    return err


def test_a_family_that_is_not_fomm_is_not_exportable(tmp_path, capsys):
    from mmfa_tiny import tiny_checkpoint as mmfa_checkpoint

    weights = mmfa_checkpoint(tmp_path / "mmfa.safetensors")
    err = one_line_error(
        capsys, ["export", "--checkpoint", str(weights), "--format", "onnx", "-o", str(tmp_path / "x")]
    )
    assert "mmfa family is not exportable" in err
    err = one_line_error(capsys, ["export", "--checkpoint", str(tmp_path), "-o", str(tmp_path / "x")])
    assert "is a folder, not a checkpoint file" in err
    assert not (tmp_path / "x").exists()


def test_an_existing_non_empty_output_folder_is_refused(tmp_path, tiny_checkpoint, fomm_export, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):  # --overwrite replaces an earlier export only
        err = one_line_error(capsys, ["export", "--checkpoint", str(tiny_checkpoint), "-o", str(out), *extra])
        assert str(out) in err and ("not empty" in err or "not an ONNX export" in err)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_animate_backend_errors(tmp_path, tiny_checkpoint, fomm_export, source_image, driving_video, capsys):
    base = ["animate", str(source_image), str(driving_video), "-o", str(tmp_path / "out.mp4")]
    empty = tmp_path / "empty"
    empty.mkdir()
    err = one_line_error(capsys, [*base, "--backend", "onnxruntime", "--checkpoint", str(empty)])
    assert "no manifest.json" in err
    err = one_line_error(capsys, [*base, "--backend", "onnxruntime", "--checkpoint", str(tiny_checkpoint)])
    assert "not an export folder" in err
    err = one_line_error(capsys, [*base, "--checkpoint", str(fomm_export.output)])
    assert "--backend onnxruntime" in err
    err = one_line_error(
        capsys, [*base, "--backend", "onnxruntime", "--checkpoint", str(fomm_export.output), "--config", "vox-256"]
    )
    assert "drop --config" in err
    assert not (tmp_path / "out.mp4").exists()


def test_missing_onnxruntime_says_how_to_install(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    err = one_line_error(capsys, ["export", "--checkpoint", str(tiny_checkpoint), "-o", str(tmp_path / "x")])
    assert 'pip install "reanimate[onnx]"' in err
    assert not (tmp_path / "x").exists()


def test_export_command_prints_the_check(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "export"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "opset 17" in err and "largest difference from PyTorch" in err
    assert (out / "manifest.json").is_file()
