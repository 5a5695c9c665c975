"""Bad --config / --checkpoint / device inputs to ``reanimate animate``: one clear line,
exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reanimate.checkpoint import identify_config
from reanimate.cli import main
from reanimate.errors import CheckpointError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_animate(tmp_path, *extra) -> tuple[int, str]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    code = main(
        ["animate", str(EXAMPLES / "source.png"), str(EXAMPLES / "driving.mp4"), "-o", str(out / "o.mp4"), "-q", *extra]
    )
    assert not list(out.iterdir()), "something was written"
    return code


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such config file"),
        ("model_params: [unclosed", "not valid YAML"),
        ("", "empty"),
        ("just: text\n", "no 'model_params' section"),
        ("model_params: !!python/object/apply:os.system ['echo hacked']\n", "YAML tags that build Python objects"),
    ],
)
def test_config_alone_is_validated(tmp_path, capsys, content, message):
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    assert run_animate(tmp_path, "--config", str(path)) == 2
    err = one_line(capsys)
    assert message in err and "config.yaml" in err


def test_unknown_builtin_config_name(tmp_path, capsys):
    assert run_animate(tmp_path, "--config", "vox-999") == 2
    err = one_line(capsys)
    assert "vox-999" in err and "vox-256" in err  # names the built-in ones


def test_a_valid_config_alone_says_what_it_is_for(tmp_path, capsys):
    assert run_animate(tmp_path, "--config", "vox-256") == 2
    err = one_line(capsys)
    assert "--checkpoint" in err and "drop --config" in err


def test_missing_official_checkpoint_says_it_is_missing(tmp_path, capsys):
    assert run_animate(tmp_path, "--checkpoint", str(tmp_path / "nothing.pth.tar")) == 2
    err = one_line(capsys)
    assert "nothing.pth.tar" in err and "no such checkpoint file" in err


def test_garbage_official_checkpoint(tmp_path, capsys):
    path = tmp_path / "garbage.pth.tar"
    path.write_bytes(b"not a checkpoint at all" * 10)
    assert run_animate(tmp_path, "--checkpoint", str(path)) == 2
    err = one_line(capsys)
    assert "garbage.pth.tar" in err and "not a readable PyTorch checkpoint" in err


def test_official_checkpoint_of_no_shipped_config_names_the_option(tmp_path, capsys, tiny_model):
    path = tmp_path / "tiny.pth.tar"
    torch.save(
        {"kp_detector": tiny_model.kp_detector.state_dict(), "generator": tiny_model.generator.state_dict()}, path
    )
    assert run_animate(tmp_path, "--checkpoint", str(path)) == 2
    err = one_line(capsys)
    assert "match no shipped config" in err and "--config" in err


def test_official_checkpoint_found_from_its_tensors(tmp_path, monkeypatch, tiny_model, tiny_config):
    """With the shipped configs replaced by tiny ones, a reference-layout file of one of
    them loads without --config; two that build different networks are ambiguous."""
    from conftest import TINY_CONFIG

    import reanimate.models.config as config_module

    folder = tmp_path / "configs" / "fomm"
    folder.mkdir(parents=True)
    (folder / "tiny-a.yaml").write_text(TINY_CONFIG)
    (folder / "tiny-big.yaml").write_text(TINY_CONFIG.replace("num_kp: 5", "num_kp: 7"))
    monkeypatch.setattr(config_module, "CONFIG_DIR", tmp_path / "configs")
    path = tmp_path / "tiny.pth.tar"
    torch.save(
        {"kp_detector": tiny_model.kp_detector.state_dict(), "generator": tiny_model.generator.state_dict()}, path
    )
    assert identify_config(path).name == "tiny-a"

    # Same tensors, another temperature: the weights cannot tell them apart.
    (folder / "tiny-hot.yaml").write_text(TINY_CONFIG.replace("temperature: 0.1", "temperature: 0.5"))
    with pytest.raises(CheckpointError, match="several shipped configs"):
        identify_config(path)


def test_landmark_animator_refuses_fp16(tmp_path, capsys):
    assert run_animate(tmp_path, "--fp16") == 2
    assert "--fp16" in one_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_landmark_animator_refuses_cuda_without_cuda(tmp_path, capsys):
    assert run_animate(tmp_path, "--device", "cuda") == 2
    assert "no CUDA device" in one_line(capsys)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("reanimate ")
