"""Check that reanimate's FOMM networks compute exactly what the reference
implementation computes, with the same random weights and inputs.

Needs a checkout of the public reference code (AliaksandrSiarohin/first-order-model),
which this project does not include; its ``modules/`` and ``animate.py`` are imported
from there. Only torch, numpy, scipy and pyyaml are needed (no torchvision).

    python benchmarks/reference_equivalence.py --reference /path/to/first-order-model

For each config it prints the max abs difference of keypoints, Jacobians, masks,
occlusion maps, deformed images, predictions, relative motion (``normalize_kp`` with
adapt-scale) and discriminator maps, for ``align_corners`` false (the reference code
run on PyTorch >= 1.3) and true (emulating PyTorch 1.0, where the checkpoints were
trained). Exit status 1 if any difference exceeds --tolerance (default 1e-5).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from reanimate.models import build_model, load_config
from reanimate.motion import relative_motion


def load_reference(root: Path):
    sys.path.insert(0, str(root))
    from modules import dense_motion, generator  # noqa: F401  (reference code)
    from modules.discriminator import MultiScaleDiscriminator
    from modules.generator import OcclusionAwareGenerator
    from modules.keypoint_detector import KPDetector
    from scipy.spatial import ConvexHull

    # animate.py imports training-only packages; take just its normalize_kp function.
    source = (root / "animate.py").read_text()
    fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "normalize_kp")
    namespace = {"torch": torch, "np": np, "ConvexHull": ConvexHull}
    exec(compile(ast.Module([fn], []), "animate.py", "exec"), namespace)
    modules = {"dense_motion": dense_motion, "generator": generator}
    return KPDetector, OcclusionAwareGenerator, MultiScaleDiscriminator, namespace["normalize_kp"], modules


def randomize(*models, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for model in models:
        with torch.no_grad():
            for name, value in model.state_dict().items():
                if value.dtype.is_floating_point and not name.endswith("down.weight"):
                    noise = torch.randn(value.shape, generator=gen)
                    value.copy_(noise.abs() + 0.5 if "running_var" in name else noise * 0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, type=Path, help="checkout of the reference FOMM code")
    parser.add_argument("--configs", nargs="+", default=["vox-256", "vox-adv-256", "mgif-256", "taichi-256"])
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    KPDetector, Generator, Discriminator, normalize_kp, ref_modules = load_reference(args.reference.resolve())
    plain_grid_sample = F.grid_sample
    worst = 0.0
    for align in (False, True):
        # The reference calls grid_sample without align_corners; emulate PyTorch 1.0 for True.
        def grid_sample(*a, **k):
            k.setdefault("align_corners", align)
            return plain_grid_sample(*a, **k)

        for module in ref_modules.values():
            module.F.grid_sample = grid_sample
        for name in args.configs:
            raw = yaml.safe_load((args.reference / "config" / f"{name}.yaml").read_text())["model_params"]
            common = raw["common_params"]
            kp_ref = KPDetector(**raw["kp_detector_params"], **common).eval()
            gen_ref = Generator(**raw["generator_params"], **common).eval()
            disc_ref = Discriminator(**raw["discriminator_params"], **common).eval()
            randomize(kp_ref, gen_ref, disc_ref)
            ours = build_model(load_config(name).with_align_corners(align), with_discriminator=True).eval()
            ours.kp_detector.load_state_dict(kp_ref.state_dict())
            ours.generator.load_state_dict(gen_ref.state_dict())
            ours.discriminator.load_state_dict(disc_ref.state_dict())
            gen = torch.Generator().manual_seed(1)
            src, drv = torch.rand(2, 3, 256, 256, generator=gen), torch.rand(2, 3, 256, 256, generator=gen)
            with torch.no_grad():
                ks_r, kd_r, k0_r = kp_ref(src), kp_ref(drv), kp_ref(drv.flip(0))
                ks, kd, k0 = ours.kp_detector(src), ours.kp_detector(drv), ours.kp_detector(drv.flip(0))
                out_r = gen_ref(src, kp_source=ks_r, kp_driving=kd_r)
                out = ours.generator(src, kd, ks)
                first = lambda kp: {k: v[:1] for k, v in kp.items()}  # noqa: E731
                rel_r = normalize_kp(
                    kp_source=first(ks_r),
                    kp_driving=first(kd_r),
                    kp_driving_initial=first(k0_r),
                    adapt_movement_scale=True,
                    use_relative_movement=True,
                    use_relative_jacobian=True,
                )
                rel = relative_motion(ks[0], kd[0], k0[0], adapt_movement_scale=True)
                disc_r = disc_ref({"prediction_1": src}, kp=ks_r)["prediction_map_1"]
                disc = ours.discriminator({1: src}, ks)[1][1]
            diffs = {
                "kp": (ks_r["value"] - ks.value).abs().max(),
                "jacobian": (ks_r["jacobian"] - ks.jacobian).abs().max(),
                "mask": (out_r["mask"] - out.mask).abs().max(),
                "occlusion": (out_r["occlusion_map"] - out.occlusion_map).abs().max(),
                "deformed": (out_r["deformed"] - out.deformed).abs().max(),
                "prediction": (out_r["prediction"] - out.prediction).abs().max(),
                "relative": max(
                    (rel_r["value"] - rel.value).abs().max(), (rel_r["jacobian"] - rel.jacobian).abs().max()
                ),
                "discriminator": (disc_r - disc).abs().max(),
            }
            worst = max(worst, *(float(v) for v in diffs.values()))
            print(
                f"{name:14s} align_corners={str(align):5s} " + " ".join(f"{k}={float(v):.1e}" for k, v in diffs.items())
            )
    print(f"worst max abs difference: {worst:.2e} (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
