"""The zero-shot landmark animator and face-aware ``animate`` on the bundled example."""

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("mediapipe")

from portrait_crop import portrait_crop  # noqa: E402

from reanimate.animators.landmarks import (  # noqa: E402
    DrivingFace,
    LandmarkAnimator,
    LandmarkAnimatorConfig,
    eye_openness,
    frontal_view,
    mouth_openness,
)
from reanimate.animators.landmarks.warp import mirror_weights  # noqa: E402
from reanimate.cli import main  # noqa: E402
from reanimate.faces import FaceMesh, square_box, topology  # noqa: E402
from reanimate.faces.edit import close_eyes, open_mouth, turn_head  # noqa: E402
from reanimate.geometry.mesh import signed_areas  # noqa: E402
from reanimate.io import open_frames, open_writer, read_image  # noqa: E402
from reanimate.pipelines import animate  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZE = 512


@pytest.fixture(scope="module")
def portrait():
    return read_image(EXAMPLES / "source.png")


@pytest.fixture(scope="module")
def crop():
    return portrait_crop(SIZE)


@pytest.fixture(scope="module")
def animator():
    return LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE))


@pytest.fixture(scope="module")
def short_driving(tmp_path_factory):
    """10 frames of the bundled driving clip, every 8th (so that they differ)."""
    path = tmp_path_factory.mktemp("driving") / "short.mp4"
    with open_frames(EXAMPLES / "driving.mp4") as reader, open_writer(path, reader.fps) as writer:
        for i, frame in enumerate(reader):
            if i == 80:
                break
            if i % 8 == 0:
                writer.write(frame[None])
    return path


def drive(animator, source, landmarks, initial_landmarks, frame=None):
    side = float(SIZE - 1)
    kp = animator.keypoints(np.stack([landmarks, initial_landmarks]), (0, 0), side)
    return animator.animate(source, DrivingFace(kp[0], landmarks, frame), DrivingFace(kp[1], initial_landmarks))


def redetect(image):
    with FaceMesh() as mesh:
        faces = mesh.detect(image)
    assert faces, "no face found in the animator's output"
    return faces[0].landmarks


def test_still_driver_returns_the_source(crop, animator):
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    out = drive(animator, source, landmarks, landmarks)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).max() <= 1


def test_blink_closes_the_source_eyes(crop, animator):
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    out = drive(animator, source, close_eyes(landmarks), landmarks)
    # Where the dark irises were, the closed lids now show skin.
    for centre in (topology.RIGHT_IRIS_CENTER, topology.LEFT_IRIS_CENTER):
        x, y = np.round(landmarks[centre, :2]).astype(int)
        before, after = image[y - 3 : y + 4, x - 3 : x + 4].mean(), out[y - 3 : y + 4, x - 3 : x + 4].mean()
        assert after > before + 60, (centre, before, after)
    # And the face mesh sees the eyes at least half closed (glasses make this portrait
    # a hard case for it; the closing in the geometry itself is complete).
    before, after = eye_openness(landmarks), eye_openness(redetect(out))
    assert np.all(after < 0.5 * before), (before, after)


def test_closed_lid_layer_changes_only_the_eyes(crop):
    image, landmarks = crop
    frames = {}
    for fill in (False, True):
        animator = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, lid_fill=fill))
        frames[fill] = drive(animator, animator.encode_source(image, landmarks), close_eyes(landmarks), landmarks)
    changed = np.abs(frames[True].astype(int) - frames[False]).max(-1) > 2
    near_eyes = np.zeros(changed.shape, bool)
    for loop in (topology.RIGHT_EYE, topology.LEFT_EYE):
        points = landmarks[list(loop), :2]
        width = np.ptp(points[:, 0])
        (x0, y0), (x1, y1) = np.floor(points.min(0) - width).astype(int), np.ceil(points.max(0) + width).astype(int)
        near_eyes[max(y0, 0) : y1, max(x0, 0) : x1] = True
    assert changed.sum() > 200  # the lids are redrawn
    assert not changed[~near_eyes].any()


def test_opened_mouth_follows_and_is_filled(crop, animator):
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    driver = open_mouth(landmarks, 0.1)
    out = drive(animator, source, driver, landmarks)  # no driver frame: shadow fill
    found = redetect(out)
    assert mouth_openness(found) > mouth_openness(landmarks) + 0.5 * (
        mouth_openness(driver) - mouth_openness(landmarks)
    )
    # The revealed interior is dark, not stretched lip colour.
    up, low = topology.INNER_LIP_MIDDLE
    centre = np.round((driver[up, :2] + driver[low, :2]) / 2).astype(int)
    inside = out[centre[1] - 2 : centre[1] + 3, centre[0] - 2 : centre[0] + 3].astype(float).mean()
    assert inside < 0.6 * source.lips[0].mean()


def test_mouth_interior_comes_from_the_driver_frame(crop, animator):
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    driver = open_mouth(landmarks, 0.1)
    frame = np.full_like(image, 40)
    frame[..., 1] = 220  # a green mouth interior the output must show, colour-matched
    out = drive(animator, source, driver, landmarks, frame)
    up, low = topology.INNER_LIP_MIDDLE
    c = np.round((driver[up, :2] + driver[low, :2]) / 2).astype(int)
    pixel = out[c[1], c[0]].astype(float)
    dark = drive(animator, source, driver, landmarks)[c[1], c[0]].astype(float)
    assert not np.allclose(pixel, dark, atol=10)


def test_head_turn_does_not_fold_the_visible_face(crop, animator):
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    side = float(SIZE - 1)
    skin = source.triangles[: source.mesh_count]
    for degrees in (-25, 25):
        driver = turn_head(landmarks, yaw=degrees)
        kp = animator.keypoints(np.stack([driver, landmarks]), (0, 0), side)
        target, points = animator.transfer(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
        nodes = animator.target_nodes(source, points, target.jacobian)
        # Relaxation only removes folds: never more flipped skin than the driver's own
        # projection turns away from the camera.
        flipped = signed_areas(nodes, skin) * source.areas[: source.mesh_count] <= 0
        facing_away = signed_areas(driver[:, :2], skin) * source.areas[: source.mesh_count] <= 0
        assert flipped.sum() <= facing_away.sum()
        # Drawn near over far, folded skin is (almost) never what is seen.
        depth = np.concatenate([points[:, 2], source.depth[len(points) :]])
        seen = animator.rasterize(source, nodes, depth, SIZE) - 1
        on_skin = (seen >= 0) & (seen < source.mesh_count)
        folded = on_skin & flipped[np.clip(seen, 0, source.mesh_count - 1)]
        assert folded.sum() < 0.03 * on_skin.sum(), (
            f"{folded.sum()} of {on_skin.sum()} face pixels folded at yaw {degrees}"
        )
        out = animator.render(source, nodes, depth)
        # The border is (up to the flow's upsampling) fixed: no seam when pasted back.
        for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
            assert np.abs(out[edge].astype(int) - image[edge]).max() <= 2


def test_animate_with_a_still_driver_and_paste_back(tmp_path, portrait):
    still = tmp_path / "still"
    still.mkdir()
    for i in range(3):
        from PIL import Image

        Image.fromarray(portrait).save(still / f"{i:03d}.png")
    out = tmp_path / "out"
    result = animate(EXAMPLES / "source.png", still, out, progress=False)
    frames = sorted(out.glob("*.png"))
    assert result.frames == 3 and len(frames) == 3
    frame = read_image(frames[-1])
    assert frame.shape == portrait.shape  # pasted back at the source's resolution
    # (the crop is resampled to 512 and back, hence not bit-exact inside the box)
    assert np.abs(frame.astype(int) - portrait).mean() < 2.0
    # Far from the face (outside the crop box) nothing changes at all.
    with FaceMesh() as mesh:
        box = square_box(mesh.detect(portrait)[0].box, portrait.shape[:2], 0.45)
    outside = np.ones(portrait.shape[:2], bool)
    outside[box[1] : box[3], box[0] : box[2]] = False
    assert np.array_equal(frame[outside], portrait[outside])


def test_animate_follows_the_driver(tmp_path, short_driving):
    out = tmp_path / "out.mp4"
    assert (
        main(
            ["animate", str(EXAMPLES / "source.png"), str(short_driving), "-o", str(out), "-q", "--smooth", "one-euro"]
        )
        == 0
    )
    with open_frames(out) as reader:
        assert reader.frame_count == 10
        frames = list(reader)
    assert frames[0].shape == read_image(EXAMPLES / "source.png").shape
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0.5  # it moves


def test_find_best_frame_uses_face_landmarks(tmp_path, short_driving):
    with open_frames(short_driving) as reader:
        source = reader.read_frame(7)
    from PIL import Image

    path = tmp_path / "frame7.png"
    Image.fromarray(source).save(path)
    result = animate(path, short_driving, tmp_path / "o.mp4", progress=False, find_best_frame=True)
    assert result.reference_frame == 7


def test_no_face_in_source_is_a_one_line_error(tmp_path, short_driving, capsys):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], (128, 1, 3))).save(blank)
    out = tmp_path / "o.mp4"
    assert main(["animate", str(blank), str(short_driving), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "blank.png" in err[0] and "no face" in err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == [blank]


def test_no_face_in_driving_is_a_one_line_error(tmp_path, capsys):
    from media import make_video

    driving = make_video(tmp_path / "noface.mp4", num_frames=6)
    out = tmp_path / "o.mp4"
    assert main(["animate", str(EXAMPLES / "source.png"), str(driving), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noface.mp4" in err[0] and "no face" in err[0] and "frame 0" in err[0]
    assert not out.exists()


def test_several_faces_animate_the_largest_and_say_so(tmp_path, portrait, short_driving, capsys):
    import cv2
    from PIL import Image

    small = cv2.resize(portrait, (portrait.shape[1] // 2, portrait.shape[0] // 2))
    canvas = np.full((portrait.shape[0], portrait.shape[1] + small.shape[1], 3), 128, np.uint8)
    canvas[:, : portrait.shape[1]] = portrait
    canvas[: small.shape[0], portrait.shape[1] :] = small
    group = tmp_path / "group.png"
    Image.fromarray(canvas).save(group)
    result = animate(group, short_driving, tmp_path / "o.mp4", progress=False)
    assert any("2 faces" in note and "largest" in note for note in result.notes)
    assert (
        main(["animate", str(group), str(short_driving), "-o", str(tmp_path / "x.mp4"), "-q", "--face-index", "5"]) == 2
    )
    assert "--face-index 5" in capsys.readouterr().err


def test_fomm_face_model_crops_and_pastes_back(tmp_path, short_driving):
    """A FOMM model whose config is a face config (vox*) crops the face of the source
    and of the driver, and pastes its output back at the source's resolution."""
    from conftest import TINY_CONFIG

    from reanimate.animators.fomm import FommAnimator
    from reanimate.models import ModelConfig, build_model
    from reanimate.pipelines import AnimationPipeline

    face_config = TINY_CONFIG.replace("model_params:\n", "model_params:\n  face: true\n")
    model = build_model(ModelConfig.from_yaml_text(face_config, name="tiny"), seed=0)
    pipeline = AnimationPipeline(FommAnimator(model, device="cpu"))
    assert pipeline.requirements.face
    out = tmp_path / "out"
    result = pipeline.animate(EXAMPLES / "source.png", short_driving, out, progress=False)
    frames = sorted(out.glob("*.png"))
    assert result.frames == 10 and len(frames) == 10
    source = read_image(EXAMPLES / "source.png")
    frame = read_image(frames[0])
    assert frame.shape == source.shape
    # Outside the (FOMM-margin) crop box the source is untouched.
    with FaceMesh() as mesh:
        box = square_box(mesh.detect(source)[0].box, source.shape[:2], 0.1)
    assert np.array_equal(frame[: box[1]], source[: box[1]])


def test_head_pose_is_transferred_in_the_source_head_frame(crop, animator):
    from reanimate.faces import head_pose

    image, landmarks = crop
    source = animator.encode_source(image, turn_head(landmarks, yaw=-30))  # a three-quarter view
    side = float(SIZE - 1)
    base = head_pose(source.landmarks)
    for yaw, pitch in ((15.0, 0.0), (0.0, 10.0)):
        driver = turn_head(landmarks, yaw=yaw, pitch=pitch)  # a frontal driver turns or nods
        kp = animator.keypoints(np.stack([driver, landmarks]), (0, 0), side)
        _, points = animator.transfer(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
        pose = head_pose(points)
        assert pose.yaw - base.yaw == pytest.approx(yaw, abs=1.5)
        assert pose.pitch - base.pitch == pytest.approx(pitch, abs=1.5)
        # Nodding about its own left-right axis does not tilt the turned head.
        assert pose.roll - base.roll == pytest.approx(0.0, abs=1.5)
    # The plain 2-D rule copies the frontal driver's foreshortening: it under-turns.
    flat = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, head_pose=False))
    driver = turn_head(landmarks, yaw=15.0)
    kp = flat.keypoints(np.stack([driver, landmarks]), (0, 0), side)
    _, points = flat.transfer(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
    assert head_pose(points).yaw - base.yaw < 13.5


def test_gaze_slides_the_iris_and_leaves_the_rest(crop, animator):
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    driver = landmarks.copy()
    shifts = []
    for corners, iris in (
        (topology.RIGHT_EYE_CORNERS, (topology.RIGHT_IRIS_CENTER, *topology.RIGHT_IRIS)),
        (topology.LEFT_EYE_CORNERS, (topology.LEFT_IRIS_CENTER, *topology.LEFT_IRIS)),
    ):
        a, b = landmarks[corners[0], :2], landmarks[corners[1], :2]
        shift = 0.15 * (b - a)  # towards the inner corner, 15% of the eye width
        driver[list(iris), :2] += shift
        shifts.append(shift)
    out = drive(animator, source, driver, landmarks)
    still = drive(LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, gaze=False)), source, driver, landmarks)
    changed = np.abs(out.astype(int) - still).max(axis=2) > 0
    for loop, iris_centre, shift in (
        (topology.RIGHT_EYE, topology.RIGHT_IRIS_CENTER, shifts[0]),
        (topology.LEFT_EYE, topology.LEFT_IRIS_CENTER, shifts[1]),
    ):
        x0, y0 = np.floor(landmarks[list(loop), :2].min(0)).astype(int) - 2
        x1, y1 = np.ceil(landmarks[list(loop), :2].max(0)).astype(int) + 3
        changed[y0:y1, x0:x1] = False  # only the eyes may change

        # The darkness centroid inside the eye opening (the lids stay): the iris.
        opening = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(opening, [np.round(landmarks[list(loop), :2]).astype(np.int32)], 1)
        opening = cv2.erode(opening, np.ones((3, 3), np.uint8)).astype(bool)
        ys, xs = np.nonzero(opening)

        threshold = np.median(image[ys, xs].astype(float).mean(1))

        def dark_centroid(img):
            weight = np.clip(threshold - img[ys, xs].astype(float).mean(1), 0, None)
            return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()

        moved = dark_centroid(out) - dark_centroid(image)
        assert moved @ shift / (shift @ shift) > 0.6, f"the iris moved {moved}, the driver's {shift}"
        assert dark_centroid(still) == pytest.approx(dark_centroid(image), abs=0.3)
    assert not changed.any(), "the gaze changed pixels outside the eyes"


def test_head_carried_out_of_the_crop_is_held_inside(crop, animator):
    from reanimate.animators.landmarks import FACE_OVAL, keep_head_inside

    _, landmarks = crop
    side, margin, ring = float(SIZE - 1), 20.0, 1.25

    def ring_box(p):
        oval = p[FACE_OVAL, :2]
        r = oval.mean(0) + ring * (oval - oval.mean(0))
        return r.min(0), r.max(0)

    # A small move leaves the landmarks exactly as they are.
    moved = landmarks + np.array([4.0, -6.0, 0.0])
    assert np.array_equal(keep_head_inside(moved, landmarks, ring, margin, side), moved)
    # Carried 250 px up: translated back until the ring's top is at the margin, nothing else.
    moved = landmarks + np.array([0.0, -250.0, 0.0])
    held = keep_head_inside(moved, landmarks, ring, margin, side)
    lo, hi = ring_box(held)
    assert lo[1] == pytest.approx(margin) and np.all(lo >= margin - 1e-9) and np.all(hi <= side - margin + 1e-9)
    shift = held - moved
    assert np.allclose(shift, shift[0]) and shift[0, 0] == 0 and shift[0, 1] > 0
    # Grown 3x about its centre: shrunk about the ring's centre until it fits, then kept inside.
    centre = landmarks[:, :2].mean(0)
    grown = landmarks.copy()
    grown[:, :2] = centre + 3.0 * (landmarks[:, :2] - centre)
    held = keep_head_inside(grown, landmarks, ring, margin, side)
    lo, hi = ring_box(held)
    assert np.all(lo >= margin - 1e-6) and np.all(hi <= side - margin + 1e-6)
    assert max(hi - lo) == pytest.approx(side - 2 * margin)
    # Shape is kept: distances all scale by one factor.
    d_before = np.linalg.norm(grown[1:, :2] - grown[0, :2], axis=1)
    d_after = np.linalg.norm(held[1:, :2] - held[0, :2], axis=1)
    assert np.allclose(d_after / d_before, d_after[0] / d_before[0])
    # Through the animator: a driver whose face leaves upwards keeps the head in the crop.
    source = animator.encode_source(crop[0], landmarks)
    driver = landmarks + np.array([0.0, -250.0, 0.0])
    kp = animator.keypoints(np.stack([driver, landmarks]), (0, 0), side)
    _, points = animator.transfer(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
    assert ring_box(points)[0][1] >= animator.config.crop_margin * side - 1e-6


def test_sliver_triangles_sample_inside_their_source_triangle(crop, animator):
    """A skin triangle squashed to a sliver in the target (drawn in front) has a
    near-singular backward map: cells its edges touch would sample far outside it
    (dark specks). The flow holds them within a pixel of its source box."""
    from reanimate.geometry.mesh import triangle_backward_maps

    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    skin = np.arange(source.mesh_count)
    t = int(skin[np.argmax(np.abs(source.areas[: source.mesh_count]))])
    a, b, c = source.triangles[t]
    nodes = source.nodes.copy()
    edge = nodes[b] - nodes[a]
    normal = np.array([-edge[1], edge[0]]) / np.linalg.norm(edge)
    side = np.sign(np.dot(nodes[c] - nodes[a], normal))  # keep its facing (back faces are not drawn)
    nodes[c] = 0.5 * (nodes[a] + nodes[b]) + 0.05 * side * normal  # 0.05 px from the opposite edge
    depth = source.depth.copy()
    depth[[a, b, c]] -= 1000.0  # nearest: drawn last
    map_x, map_y, xs, ys, index = animator.grid_flow(source, nodes, depth, SIZE)
    cells = index == t + 1
    assert cells.any() and (index > 0).all()
    # Unheld, the sliver's own map sends some of its cells far away.
    m = triangle_backward_maps(source.nodes, nodes, source.triangles[[t]])[0]
    yy, xx = np.nonzero(cells)
    raw = np.stack(
        [m[0, 0] * xs[0, xx] + m[0, 1] * ys[yy, 0] + m[0, 2], m[1, 0] * xs[0, xx] + m[1, 1] * ys[yy, 0] + m[1, 2]],
        axis=1,
    )
    corners = source.nodes[source.triangles[t]]
    low, high = corners.min(0) - 1.0, corners.max(0) + 1.0
    assert (np.maximum(low - raw, raw - high).max(1) > 5).any()
    held = np.stack([map_x[cells], map_y[cells]], axis=1)
    assert (held >= low - 1e-3).all() and (held <= high + 1e-3).all()


def test_turning_a_three_quarter_source_back_leaves_no_skin_spikes(crop, animator):
    """A source turned 45 degrees, driven back to frontal: its far cheek, squeezed in the
    source, is stretched, and the skin triangles that flip there are relaxed. Relaxing
    holds each landmark within its neighbours (the neighbours' large Jacobians once threw
    landmarks 200 px out, drawing spikes of skin across the background)."""
    image, landmarks = crop
    three_quarter = turn_head(landmarks, yaw=45)
    source = animator.encode_source(image, three_quarter)
    side = float(SIZE - 1)
    kp = animator.keypoints(np.stack([landmarks, three_quarter]), (0, 0), side)
    target, points = animator.transfer(source, DrivingFace(kp[0], landmarks), DrivingFace(kp[1], three_quarter))
    nodes = animator.target_nodes(source, points, target.jacobian)
    n = len(points)
    low, high = points[:, :2].min(0), points[:, :2].max(0)
    margin = 0.05 * (high - low)
    assert (nodes[:n] >= low - margin).all() and (nodes[:n] <= high + margin).all()


def test_frontal_view_undoes_the_head_turn(crop):
    """Each skin triangle's facing (the sign of its area seen from in front of the head)
    is the same whichever way the head is turned."""
    _, landmarks = crop
    triangles = topology.mesh_triangles()
    front = np.sign(signed_areas(frontal_view(landmarks), triangles))
    for yaw, pitch, roll in ((40, 0, 0), (-30, 15, 10), (0, -20, -25)):
        turned = np.sign(signed_areas(frontal_view(turn_head(landmarks, yaw, pitch, roll)), triangles))
        assert (turned == front).mean() > 0.99


def test_skin_facing_away_is_not_drawn(crop, animator):
    """Back-face culling: a head turned far enough shows some skin triangles from behind
    (the far temple and cheek fold over the face in projection); none of them is seen."""
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    n = len(landmarks)
    turned = turn_head(landmarks, yaw=50)
    nodes = source.nodes.copy()
    nodes[:n] = turned[:, :2]
    depth = np.concatenate([turned[:, 2], source.depth[n:]])
    back = signed_areas(nodes, source.triangles[: source.mesh_count]) * source.front < 0
    assert back.sum() > 20
    seen = animator.rasterize(source, nodes, depth, SIZE) - 1
    skin_seen = np.unique(seen[(seen >= 0) & (seen < source.mesh_count)])
    assert len(skin_seen) > 0.5 * source.mesh_count and not back[skin_seen].any()


def test_closed_lid_layer_keeps_the_brows(crop):
    """The painted lid band stops half-way to the brow: the brows are the source's."""
    image, landmarks = crop
    source = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, lid_band=5.0)).encode_source(image, landmarks)
    changed = np.abs(source.lids.image.astype(int) - image).max(-1) > 0
    assert changed.sum() > 200
    for brow in (topology.RIGHT_EYEBROW, topology.LEFT_EYEBROW):
        x, y = np.round(landmarks[list(brow), :2]).astype(int).T
        assert not changed[y, x].any()


def test_a_turn_that_reveals_the_far_cheek_reads_it_from_the_mirror_side(crop, animator):
    """A three-quarter source driven back to frontal: its far cheek, a foreshortened strip
    in the source, is read from the other side of the face (warp.mirror_weights); a
    still driver reveals nothing and reads nothing mirrored."""
    image, landmarks = crop
    three_quarter = turn_head(landmarks, yaw=45)
    source = animator.encode_source(image, three_quarter)
    side = float(SIZE - 1)
    mc = source.mesh_count
    # the tables: mirror triangles exist for nearly all skin, and mirror their corners
    assert (source.mirror_index >= 0).mean() > 0.97
    mirror = np.array(topology.MIRROR)
    np.testing.assert_array_equal(source.mirror_texture[:mc], mirror[source.triangles[:mc]])
    kp = animator.keypoints(np.stack([three_quarter, three_quarter]), (0, 0), side)
    target, points = animator.transfer(source, DrivingFace(kp[0], three_quarter), DrivingFace(kp[1], three_quarter))
    assert mirror_weights(animator.config, source, animator.target_nodes(source, points, target.jacobian)) is None
    kp = animator.keypoints(np.stack([landmarks, three_quarter]), (0, 0), side)
    target, points = animator.transfer(source, DrivingFace(kp[0], landmarks), DrivingFace(kp[1], three_quarter))
    weights = mirror_weights(animator.config, source, animator.target_nodes(source, points, target.jacobian))
    assert weights is not None
    mirrored = weights[:mc] > 0.5
    # the mirrored skin is what the source shows worst, and its mirror image better
    assert mirrored.sum() > 10
    assert np.median(source.visibility[mirrored]) < 0.5 * np.median(source.visibility)
    assert (source.visibility[source.mirror_index[mirrored]] > source.visibility[mirrored]).all()
    off = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, mirror_fill=False))
    nodes = animator.target_nodes(source, points, target.jacobian)
    depth = np.concatenate([points[:, 2], source.depth[len(points) :]])
    assert not np.array_equal(animator.render(source, nodes, depth), off.render(source, nodes, depth))


def test_wide_mouth_on_thin_lips_does_not_fold_the_chin(crop, animator):
    """A driver's wide-open mouth whose lower lip moves down past the skin below it:
    untangled, no skin triangle that faces the camera flips (the fold cut a seam across
    the chin and hid the lower lip)."""
    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    driver = open_mouth(landmarks, 0.25)
    lower_lip = [17, 84, 314, 181, 405, 91, 321]
    driver[lower_lip, 1] += 0.06 * SIZE  # the lower lip pulled well below the skin under it
    side = float(SIZE - 1)
    kp = animator.keypoints(np.stack([driver, landmarks]), (0, 0), side)
    target, points = animator.transfer(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
    skin = source.triangles[: source.mesh_count]
    checked = np.abs(source.areas[: source.mesh_count]) > 0.05 * np.median(np.abs(source.areas[: source.mesh_count]))
    off = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, min_area_ratio=0.0))
    folded = signed_areas(off.target_nodes(source, points, target.jacobian), skin) * source.front <= 0
    assert (folded & checked).sum() > 0  # the case is real
    nodes = animator.target_nodes(source, points, target.jacobian)
    assert ((signed_areas(nodes, skin) * source.front <= 0) & checked).sum() == 0
    # only landmarks move; the anchors stay
    n = len(landmarks)
    np.testing.assert_array_equal(nodes[n:], off.target_nodes(source, points, target.jacobian)[n:])


def test_mouth_layers_keep_the_lips_and_tone_the_teeth():
    from reanimate.animators.landmarks.mouth import inner_mask, teeth_colour, tone_teeth
    from reanimate.io.image import LUMA_WEIGHTS

    square = np.array([[4.0, 4.0], [24.0, 4.0], [24.0, 24.0], [4.0, 24.0]])
    mask = inner_mask(square, (30, 30), feather=3.0)
    assert mask[:4].max() == 0 and mask[:, 26:].max() == 0  # nothing outside the contour
    assert mask[14, 14] == 1.0 and 0 < mask[14, 5] < 1  # full inside, rising from the contour
    # teeth: a little below the eyes' white, not below the lips' brightness + a third
    lips = np.array([150.0, 80.0, 80.0], np.float32)
    teeth = teeth_colour([np.array([200.0, 200.0, 190.0]), np.array([210.0, 205.0, 200.0])], lips)
    assert abs(float(teeth @ LUMA_WEIGHTS) - 0.92 * 202.4) < 1.5
    dim = teeth_colour([np.array([40.0, 40.0, 40.0])], lips)
    assert abs(float(dim @ LUMA_WEIGHTS) - 1.33 * float(lips @ LUMA_WEIGHTS)) < 0.5
    # ... in a hue half-way to ivory: a bluish white gives teeth warmer than it, a grey
    # white teeth as warm as half an ivory's
    cold = teeth_colour([np.array([190.0, 205.0, 230.0])], lips)
    assert cold[2] / cold[0] < 230.0 / 190.0 and cold[0] < cold[2]
    assert dim[0] > dim[1] > dim[2]
    # a driver's pure-white teeth over a dark interior: the teeth come down to the
    # source's level with their texture, the dark interior stays
    fill = np.full((10, 10, 3), 60.0, np.float32)
    fill[:4] = 255.0
    fill[:4, ::2] = 235.0
    out = tone_teeth(fill, np.ones((10, 10), np.float32), teeth)
    luma = out @ LUMA_WEIGHTS
    assert luma[:4].max() <= float(teeth @ LUMA_WEIGHTS) + 1e-3
    assert luma[0, 1] > luma[0, 0]  # the teeth's texture survives
    np.testing.assert_array_equal(out[4:], fill[4:])


def test_sclera_the_iris_hid_is_shaded_at_the_rim(crop):
    """Where the source's iris met the lids, the sclera painted in for a look aside is
    shaded like the eyeball's curve (darker than the white the eye shows), not a glaring
    white wedge."""
    from reanimate.animators.landmarks.config import EYES
    from reanimate.animators.landmarks.eyes import RIM_SCLERA_SHADE, eye_white, eyeball
    from reanimate.io.image import LUMA_WEIGHTS

    image, landmarks = crop
    for eye in EYES:
        layer = eyeball(image, landmarks, eye, 1.1)
        white = float(eye_white(layer) @ LUMA_WEIGHTS)
        luminance = layer.sclera @ LUMA_WEIGHTS
        hidden = layer.iris_alpha > 0.5
        inside = layer.opening > 0.5
        rim = hidden & inside & ~cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert rim.sum() >= 5
        assert luminance[rim].mean() < 0.5 * (1 + RIM_SCLERA_SHADE) * white


def test_a_brow_lowered_onto_the_lid_keeps_the_lid(crop, animator):
    """A driver that lowers its brow by the source's whole lid height: the lid skin
    between the upper lid and the brow keeps lid_keep of its size (the brow stops above
    it) instead of folding under the brow (a notch between the brow and the eye)."""
    from reanimate.animators.landmarks.config import EYES
    from reanimate.animators.landmarks.warp import lid_skin

    image, landmarks = crop
    source = animator.encode_source(image, landmarks)
    driver = landmarks.copy()
    for eye, brow in zip(EYES, (topology.RIGHT_EYEBROW, topology.LEFT_EYEBROW)):
        drop = landmarks[eye["pairs"][:, 0], 1].mean() - landmarks[eye["brow"], 1].mean()
        driver[list(brow), 1] += drop
    side = float(SIZE - 1)
    kp = animator.keypoints(np.stack([driver, landmarks]), (0, 0), side)
    target, points = animator.transfer(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
    skin = source.triangles[: source.mesh_count]
    lids = lid_skin(landmarks, skin)
    assert lids.sum() > 20
    ratio = {}
    for keep in (0.0, animator.config.lid_keep):
        config = LandmarkAnimatorConfig(size=SIZE, lid_keep=keep)
        keeping = LandmarkAnimator(config)  # (the lids to keep are chosen with the source)
        nodes = keeping.target_nodes(keeping.encode_source(image, landmarks), points, target.jacobian)
        ratio[keep] = (signed_areas(nodes, skin) * source.front / np.abs(source.areas[: source.mesh_count]))[lids]
    assert ratio[0.0].min() < 0.1  # without it the lid folds
    assert ratio[animator.config.lid_keep].min() > 0.9 * animator.config.lid_keep
