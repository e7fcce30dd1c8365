"""vggt-train on a synthetic bag: VGGT's normalised targets, deterministic and resumable runs,
a loss that falls, and weights the Reconstructor loads."""

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from vggt_ros.checkpoints import load_model
from vggt_ros.model import StreamVGGT
from vggt_ros.model.layers import attend
from vggt_ros.model.synthetic_weights import synthetic_model
from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.training import train as trainer
from vggt_ros.training.data import BagTopics, clip_indices, make_clip, read_frames
from vggt_ros.training.init import initialise_from_scratch

WIDTH = 56  # the model's width: 112x84 frames become 56x42


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    sequence = make_sequence('orbit', 10, 112, 84)
    return write_bag(sequence, tmp_path_factory.mktemp('train') / 'orbit')


def run(bag, out, steps, *extra):
    args = trainer.parse_args(
        [str(bag), '--preset', 'tiny', '--out', str(out), '--steps', str(steps), '--clip', '3']
        + ['--image-width', str(WIDTH), '--warmup', '2', '--save-every', '2', '--quiet', *extra]
    )
    return trainer.train(args)


def rows(out):
    with (out / trainer.LOG_FILE).open() as file:
        return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(file)]


def test_clips_are_normalised_as_vggt_normalises_ground_truth(bag):
    frames = read_frames(bag, WIDTH, BagTopics())
    assert frames.images.shape == (10, 3, 42, 56) and frames.depths.shape == (10, 42, 56)
    clip = make_clip(frames, clip_indices(len(frames), 3, 2, np.random.default_rng(0)))
    valid = torch.isfinite(clip.depth)
    assert clip.points[valid].norm(dim=-1).mean() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(clip.pose_enc[0, :7], [0, 0, 0, 0, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(clip.points[0][..., 2][valid[0]], clip.depth[0][valid[0]], rtol=1e-5)
    assert clip.scale > 0.5  # metres per unit: the room is metres across


def test_a_resumed_run_is_the_uninterrupted_one(bag, tmp_path):
    run(bag, tmp_path / 'straight', 4)
    run(bag, tmp_path / 'resumed', 2)
    run(bag, tmp_path / 'resumed', 4, '--resume')
    assert rows(tmp_path / 'straight') == rows(tmp_path / 'resumed')
    straight = load_file(tmp_path / 'straight' / trainer.WEIGHTS_FILE)
    resumed = load_file(tmp_path / 'resumed' / trainer.WEIGHTS_FILE)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    assert (tmp_path / 'straight' / trainer.PLOT_FILE).stat().st_size > 0


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_the_loss_falls_and_the_weights_load(bag, tmp_path, precision):
    run(bag, tmp_path, 10, '--lr', '1e-3', '--precision', precision, '--head-precision', precision)
    totals = [float(row['total']) for row in rows(tmp_path)]
    assert all(np.isfinite(totals)) and np.mean(totals[-3:]) < np.mean(totals[:3])
    model = load_model(tmp_path / trainer.WEIGHTS_FILE, 'tiny')
    out = model.forward_causal(torch.rand(2, 3, 42, 56), 'fp32', ('camera', 'depth'))
    assert torch.isfinite(out['depth']).all()


def test_validation_is_scored_at_every_save_and_a_resumed_run_scores_as_the_straight_one(
    bag, tmp_path
):
    def validation(out):
        with (out / trainer.VALIDATION_FILE).open() as file:
            return list(csv.DictReader(file))

    run(bag, tmp_path / 'straight', 4, '--val', str(bag))
    run(bag, tmp_path / 'resumed', 2, '--val', str(bag))
    run(bag, tmp_path / 'resumed', 4, '--resume', '--val', str(bag))
    straight = validation(tmp_path / 'straight')
    assert [int(row['step']) for row in straight] == [0, 2, 4]
    assert all(np.isfinite(float(value)) for row in straight for value in row.values())
    assert all(0 < float(row['depth_abs_rel']) < 1 for row in straight)
    assert straight == validation(tmp_path / 'resumed')
    run(bag, tmp_path / 'straight', 2, '--val', str(bag))  # a new run starts the file anew
    assert [int(row['step']) for row in validation(tmp_path / 'straight')] == [0, 2]


def test_a_run_out_of_time_saves_its_weights_and_scores_each_step_once(bag, tmp_path):
    def progress(out):
        return json.loads((out / trainer.PROGRESS_FILE).read_text())['step']

    def validated_steps(out):
        with (out / trainer.VALIDATION_FILE).open() as file:
            return [int(row['step']) for row in csv.DictReader(file)]

    out = tmp_path / 'run'
    run(bag, out, 4, '--val', str(bag), '--max-minutes', '1e-9')  # out of time before step 0
    assert validated_steps(out) == [0]
    assert (out / trainer.WEIGHTS_FILE).exists() and progress(out) == 0
    run(bag, out, 2, '--val', str(bag), '--resume')
    run(bag, out, 4, '--val', str(bag), '--resume', '--max-minutes', '1e-9')  # right after a save
    assert validated_steps(out) == [0, 2]
    assert progress(out) == 2


def test_pose_r_squared_is_one_for_the_truth_and_zero_for_its_mean():
    from vggt_ros.training.validation import r_squared

    truth = torch.randn(20, 3)
    assert r_squared(truth, truth) == pytest.approx(1.0)
    assert r_squared(truth.mean(dim=0).expand(20, 3), truth) == pytest.approx(0.0, abs=1e-6)
    assert r_squared(-truth, truth) < 0
    with pytest.raises(ValueError, match='vary'):
        r_squared(truth, torch.ones(20, 3))


def test_the_training_set_never_holds_a_held_out_world(tmp_path):
    from vggt_ros.synthetic import HELD_OUT_SEEDS
    from vggt_ros.training import scenes
    from vggt_ros.training.scenes import write_scenes

    with pytest.raises(ValueError, match='not in the train split'):
        write_scenes(tmp_path, range(HELD_OUT_SEEDS.start - 1, HELD_OUT_SEEDS.start + 1), 2, 28, 28)
    with pytest.raises(ValueError, match='not in the held-out split'):
        write_scenes(tmp_path, range(3, 4), 2, 28, 28, split='held-out')
    bags = write_scenes(tmp_path, range(3, 4), 2, 56, 42, progress=False)
    assert sorted(bag.name for bag in bags) == ['orbit-3', 'rotate-3', 'walk-3']
    first = HELD_OUT_SEEDS.start
    command = [str(tmp_path / 'val'), '--seeds', str(first), str(first), '--frames', '2']
    command += ['--width', '56', '--height', '42', '--workers', '1']
    with pytest.raises(ValueError, match='not in the train split'):
        scenes.main(command)
    scenes.main([*command, '--split', 'held-out'])
    assert len(list((tmp_path / 'val').iterdir())) == 3


def test_scenes_of_another_length_or_half_written_are_written_again(tmp_path):
    from vggt_ros.evaluation.bag_io import open_bag
    from vggt_ros.training.scenes import write_scenes

    def images(bag):
        with open_bag(bag) as reader:
            return {c.topic: c.msgcount for c in reader.connections}['/camera/image_raw']

    bags = write_scenes(tmp_path, range(3, 4), 2, 56, 42, progress=False)
    (bags[0] / 'metadata.yaml').unlink()  # as a run interrupted while writing leaves it
    kept = bags[1].stat().st_mtime_ns
    write_scenes(tmp_path, range(3, 4), 2, 56, 42, progress=False)
    assert images(bags[0]) == 2 and bags[1].stat().st_mtime_ns == kept
    longer = write_scenes(tmp_path, range(3, 4), 3, 56, 42, progress=False)
    assert [images(bag) for bag in longer] == [3, 3, 3]


def test_worker_processes_render_the_same_bags_as_one(tmp_path):
    from vggt_ros.training.scenes import write_scenes

    one = write_scenes(tmp_path / 'one', range(3, 5), 2, 56, 42, False)
    pool = write_scenes(tmp_path / 'pool', range(3, 5), 2, 56, 42, False, workers=2)
    assert [bag.name for bag in pool] == [bag.name for bag in one]
    for a, b in zip(one, pool, strict=True):
        first, second = read_frames(a, WIDTH, BagTopics()), read_frames(b, WIDTH, BagTopics())
        assert torch.equal(first.images, second.images)
        np.testing.assert_array_equal(first.poses, second.poses)


def test_an_exported_run_loads_as_its_own_weights_rounded_to_fp16(bag, tmp_path):
    from vggt_ros.checkpoints import weights_description
    from vggt_ros.training.export import export
    from vggt_ros.weights import describe

    run(bag, tmp_path / 'run', 3, '--heads', 'camera,depth,point')
    shipped = export([tmp_path / 'run'], tmp_path / 'tiny.safetensors', 'a test')
    assert {tensor.dtype for tensor in load_file(shipped).values()} == {torch.float16}
    assert 'for 3 steps' in describe(shipped) and f'image_width {WIDTH}' in describe(shipped)
    assert describe(shipped).startswith('tiny preset') and 'CPU cores' in describe(shipped)
    assert weights_description(str(shipped), 'tiny') == f'preset tiny, checkpoint {shipped}'
    trained = load_file(tmp_path / 'run' / trainer.WEIGHTS_FILE)
    loaded = load_model(shipped, 'tiny').state_dict()
    assert all(loaded[name].dtype == torch.float32 for name in trained)
    assert all(torch.equal(loaded[name], trained[name].half().float()) for name in trained)


def test_a_run_fine_tuned_from_another_exports_its_weights_with_the_steps_of_both(bag, tmp_path):
    from vggt_ros.training.export import export
    from vggt_ros.weights import describe

    run(bag, tmp_path / 'first', 3)
    first = tmp_path / 'first' / trainer.WEIGHTS_FILE
    run(bag, tmp_path / 'then', 2, '--checkpoint', str(first))
    shipped = export([tmp_path / 'first', tmp_path / 'then'], tmp_path / 'both.safetensors', 'x')
    assert 'for 5 steps' in describe(shipped)
    then, before = load_file(tmp_path / 'then' / trainer.WEIGHTS_FILE), load_file(first)
    exported = load_file(shipped)
    assert all(torch.equal(exported[name], then[name].half()) for name in then)
    assert not all(torch.equal(then[name], before[name]) for name in then)


def test_heads_must_include_the_camera():
    with pytest.raises(SystemExit):
        trainer.parse_args(['bag', '--heads', 'depth'])
    with pytest.raises(SystemExit):
        trainer.parse_args(['bag', '--heads', 'camera,track'])
    assert trainer.parse_args(['bag']).heads == ('camera', 'depth')


def test_scenes_keep_the_density_of_a_whole_path_however_few_frames_they_hold(tmp_path):
    from vggt_ros.evaluation.bag_io import open_bag
    from vggt_ros.evaluation.ground_truth import from_tf
    from vggt_ros.training.scenes import PATH_FRAMES, write_scenes

    (bag,) = [
        b for b in write_scenes(tmp_path, range(3, 4), 3, 56, 42, False) if 'rotate' in b.name
    ]
    with open_bag(bag) as reader:
        poses = from_tf(reader, 'world', 'camera_optical_frame').poses
    whole = make_sequence('rotate', PATH_FRAMES, 56, 42, seed=3, varied=True).poses
    assert len(poses) == 3
    np.testing.assert_allclose(poses, whole[:3], atol=1e-6)


def test_the_camera_loss_scores_every_refinement_iteration_the_last_most():
    from vggt_ros.training.losses import camera_loss

    target = torch.zeros(4, 9)
    early_wrong = torch.stack([target + 1, target, target, target])
    late_wrong = torch.stack([target, target, target, target + 1])
    assert camera_loss(torch.stack([target] * 4), target) == 0
    assert 0 < camera_loss(early_wrong, target) < camera_loss(late_wrong, target)
    model = StreamVGGT('tiny').train()
    out = model(torch.rand(3, 3, 28, 42), 'fp32', ('camera',))
    assert out['pose_enc_iterations'].shape == (model.config.camera_iterations, 3, 9)
    assert torch.equal(out['pose_enc_iterations'][-1], out['pose_enc'])
    assert 'pose_enc_iterations' not in model.forward_causal(torch.rand(3, 3, 28, 42))


def test_the_depth_scale_term_scores_a_frame_off_by_a_factor_against_its_own_clip_only():
    from vggt_ros.training.losses import depth_scale_loss

    target = torch.rand(6, 5, 7) + 0.5
    target[0, :2] = float('nan')  # unknown pixels and a frame with none count for nothing
    target[4] = float('nan')
    assert depth_scale_loss(target * 3.0, target, 2) == pytest.approx(0.0, abs=1e-6)
    frame_off = target * 3.0
    frame_off[1] *= 2.0  # clip 0: frames 0-2; frame 1 twice as far as its clip says
    expected = 2 * 2 / 3 * np.log(2.0) / 5  # |log 2 - mean| over clip 0's three frames, of five
    assert depth_scale_loss(frame_off, target, 2) == pytest.approx(expected, rel=1e-4)
    other_clip = target.clone()
    other_clip[3:] *= 2.0  # the second clip as a whole: its own scale, not an error
    assert depth_scale_loss(other_clip, target, 2) == pytest.approx(0.0, abs=1e-6)


def test_a_run_with_the_depth_scale_term_logs_and_validates_it(bag, tmp_path):
    run(bag, tmp_path, 2, '--depth-scale', '10', '--val', str(bag))
    assert all(float(row['depth_scale']) >= 0 for row in rows(tmp_path))
    with (tmp_path / trainer.VALIDATION_FILE).open() as file:
        assert all(float(row['depth_scale_error']) >= 0 for row in csv.DictReader(file))
    with pytest.raises(SystemExit):
        trainer.parse_args(['bag', '--depth-scale', '1', '--heads', 'camera,point'])


def test_a_run_from_scratch_starts_with_patch_positions_as_strong_as_their_content(bag, tmp_path):
    model = trainer.build_model(trainer.parse_args([str(bag), '--preset', 'tiny']))
    dino = model.aggregator.patch_embed
    position = dino._pos_embed(3, 4)[0, 1:].detach()  # a small grid, resized as the model does
    distances = torch.cdist(position, position)
    assert float(distances[~torch.eye(len(position), dtype=torch.bool)].min()) > 0.1
    assert float(position.abs().max()) <= 1.0
    patches = dino.patch_embed(torch.rand(2, 3, 3 * 14, 4 * 14)).detach()
    assert 0.3 < float(position.norm(dim=-1).mean() / patches.norm(dim=-1).mean()) < 3
    weights = tmp_path / 'tiny.safetensors'
    save_file(StreamVGGT('tiny').state_dict(), weights)  # its position embedding is zero
    args = trainer.parse_args([str(bag), '--preset', 'tiny', '--checkpoint', str(weights)])
    assert not trainer.build_model(args).aggregator.patch_embed.pos_embed.any()


def test_a_batch_trains_each_clip_as_its_own_causal_sequence():
    torch.manual_seed(0)
    model = initialise_from_scratch(StreamVGGT('tiny'), residual_gain=1.0).train()
    images = torch.rand(3 * 4, 3, 28, 42)
    batch = model(images, 'fp32', ('camera', 'depth'), sequences=3)
    joined = model(images, 'fp32', ('camera', 'depth'))  # one sequence of 12: frames see earlier
    for k, frames in enumerate((slice(0, 4), slice(4, 8), slice(8, 12))):
        alone = model(images[frames], 'fp32', ('camera', 'depth'))
        for name in ('pose_enc', 'depth'):
            torch.testing.assert_close(batch[name][frames], alone[name], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            batch['pose_enc_iterations'][:, frames], alone['pose_enc_iterations']
        )
        if k:
            assert not torch.allclose(joined['pose_enc'][frames], alone['pose_enc'], atol=1e-4)
    with pytest.raises(ValueError, match='sequences'):
        model(images, 'fp32', ('camera',), sequences=5)


def test_worker_processes_draw_each_step_the_batch_the_training_process_draws(bag, tmp_path):
    run(bag, tmp_path / 'inline', 3, '--batch', '2')
    run(bag, tmp_path / 'workers', 3, '--batch', '2', '--workers', '2')
    assert rows(tmp_path / 'inline') == rows(tmp_path / 'workers')
    run(bag, tmp_path / 'single', 3)
    assert rows(tmp_path / 'single') != rows(tmp_path / 'inline')
    clip = trainer.StepBatches([read_frames(bag, WIDTH, BagTopics())], trainer.parse_args(
        [str(bag), '--clip', '3', '--batch', '2']
    ))[5]  # fmt: skip
    assert clip.sequences == 2 and clip.images.shape[0] == 6 and clip.scale.shape == (2,)
    np.testing.assert_allclose(clip.pose_enc[[0, 3], :7], [[0] * 6 + [1]] * 2, atol=1e-6)


def test_a_residual_gain_starts_the_frame_global_and_camera_blocks_and_leaves_dino_at_one():
    model = initialise_from_scratch(StreamVGGT('tiny'), residual_gain=0.1)
    gains = {name: p for name, p in model.named_parameters() if name.endswith('.gamma')}
    dino = {name for name in gains if name.startswith('aggregator.patch_embed.')}
    assert dino and all(bool((gains[name] == 1.0).all()) for name in dino)
    rest = set(gains) - dino
    assert any(name.startswith('camera_head.trunk') for name in rest)
    assert any(name.startswith('aggregator.global_blocks') for name in rest)
    assert all(bool((gains[name] == 0.1).all()) for name in rest)
    default = initialise_from_scratch(StreamVGGT('tiny'))
    fresh = StreamVGGT('tiny')
    assert all(
        torch.equal(p, fresh.state_dict()[name])
        for name, p in default.named_parameters()
        if name.endswith('.gamma')
    )


def test_decaying_matrices_only_spares_gains_norms_biases_tokens_and_positions():
    model = StreamVGGT('tiny')
    everything = trainer.parameter_groups(model, 'all')
    assert len(everything) == 1 and len(everything[0]['params']) == len(list(model.parameters()))
    decayed, kept = trainer.parameter_groups(model, 'matrices')
    assert kept['weight_decay'] == 0 and decayed['weight_decay'] > 0
    names = {id(p): name for name, p in model.named_parameters()}
    kept_names = {names[id(p)] for p in kept['params']}
    assert {'aggregator.camera_token', 'aggregator.patch_embed.pos_embed'} <= kept_names
    assert all(p.ndim >= 2 for p in decayed['params'])
    assert any(name.endswith('.gamma') for name in kept_names)
    assert any(name.endswith('norm1.weight') for name in kept_names)


def test_worker_processes_read_bags_as_the_training_process_reads_them(bag):
    args = trainer.parse_args([str(bag), '--image-width', str(WIDTH), '--workers', '2'])
    pooled = trainer.read_bags([bag, bag], args, BagTopics())
    alone = read_frames(bag, WIDTH, BagTopics())
    for frames in pooled:
        assert isinstance(frames.images, torch.Tensor) and isinstance(frames.depths, torch.Tensor)
        assert torch.equal(frames.images, alone.images)
        torch.testing.assert_close(frames.depths, alone.depths, equal_nan=True, rtol=0, atol=0)
        np.testing.assert_array_equal(frames.poses, alone.poses)


def test_a_bf16_forward_returns_fp32_outputs_near_the_fp32_ones_and_finite_gradients():
    model = synthetic_model('tiny', seed=3).requires_grad_(True)
    images = torch.rand(3, 3, 42, 56, generator=torch.Generator().manual_seed(0))
    heads = ('camera', 'depth')
    expected = model(images, 'fp32', heads)
    out = model(images, 'bf16', heads, head_precision='bf16')
    assert all(value.dtype == torch.float32 for value in out.values())
    torch.testing.assert_close(out['depth'], expected['depth'], rtol=0.1, atol=0.05)
    torch.testing.assert_close(out['pose_enc'], expected['pose_enc'], rtol=0.1, atol=0.05)
    (out['depth'].mean() + out['pose_enc'].abs().mean()).backward()
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients and all(torch.isfinite(g).all() for g in gradients)


def test_attention_under_cpu_autocast_runs_in_fp32():
    q, k, v = torch.randn(3, 1, 2, 6, 8, generator=torch.Generator().manual_seed(0)).bfloat16()
    mask = torch.rand(6, 6, generator=torch.Generator().manual_seed(1)) > 0.3
    mask |= torch.eye(6, dtype=torch.bool)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attend(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
