"""Correspondence supervision (vggt-train --correspondence): ground-truth patch matches that the
images agree with, the supervised head's logits as the attention computes them, and a run that
records, checkpoints and resumes its flow readout, which is the flow head of a preset that has
one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from test_training import rows, run

from vggt_ros.model import StreamVGGT
from vggt_ros.model.rope import rope_tables, token_positions
from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.training import train as trainer
from vggt_ros.training.correspondence import MATCH_HEAD, CorrespondenceLoss, head_logits
from vggt_ros.training.data import PATCH_SIZE, BagTopics, make_clip, read_frames

WIDTH = 112  # 8 x 6 patches


@pytest.fixture(scope='module')
def rotating(tmp_path_factory):
    bag = write_bag(make_sequence('rotate', 36, 224, 168), tmp_path_factory.mktemp('r') / 'rotate')
    return read_frames(bag, WIDTH, BagTopics())


CENTRES_U = (torch.arange(8) * PATCH_SIZE + PATCH_SIZE // 2).repeat(6).float()
CENTRES_V = (torch.arange(6) * PATCH_SIZE + PATCH_SIZE // 2).repeat_interleave(8).float()


def windows(image, u, v):
    """Patch-sized windows of `image` [3, H, W] centred at pixels (u, v), bilinear."""
    height, width = image.shape[-2:]
    offsets = torch.arange(PATCH_SIZE) - (PATCH_SIZE - 1) / 2
    dy, dx = torch.meshgrid(offsets, offsets, indexing='ij')
    x, y = u[:, None, None] + dx, v[:, None, None] + dy
    grid = torch.stack([x / (width - 1) * 2 - 1, y / (height - 1) * 2 - 1], dim=-1)
    return F.grid_sample(image.expand(len(u), -1, -1, -1), grid, align_corners=True)


def test_a_repeated_frame_matches_each_patch_to_itself_and_the_first_matches_nothing(rotating):
    clip = make_clip(rotating, [5, 5])
    assert (clip.matches[0] == -1).all()
    matched = clip.matches[1] >= 0
    assert matched.float().mean() > 0.9
    assert torch.equal(clip.matches[1][matched], torch.arange(48)[matched])
    assert clip.flow[1].abs().max() < 1e-4


def test_the_flow_finds_each_patch_in_the_first_frame_where_the_camera_turned(rotating):
    """Checked by the images, not the geometry that made the flow: a patch-sized window of the
    first frame at the flow's end looks like the patch, far more than one at the patch's place."""
    for later in (1, 2, 3):
        clip = make_clip(rotating, [0, later])
        matched = clip.matches[1] >= 0
        assert matched.sum() >= 12
        flow = clip.flow[1][matched] * PATCH_SIZE
        assert flow[:, 0].abs().mean() > 0.5 * PATCH_SIZE  # a real turn: half a patch or more
        u, v = CENTRES_U[matched], CENTRES_V[matched]
        patch = windows(clip.images[1], u, v)
        at_flow = (patch - windows(clip.images[0], u + flow[:, 0], v + flow[:, 1])).abs().mean()
        at_same_place = (patch - windows(clip.images[0], u, v)).abs().mean()
        assert at_flow < 0.5 * at_same_place
        column, row = ((u + flow[:, 0] + 0.5) // PATCH_SIZE, (v + flow[:, 1] + 0.5) // PATCH_SIZE)
        assert torch.equal(clip.matches[1][matched], (row * 8 + column).long())


def test_the_supervised_heads_logits_are_the_attentions_own():
    torch.manual_seed(0)
    attention = StreamVGGT('tiny').aggregator.global_blocks[1].attn
    rows_, cols, special, frames = 3, 4, 5, 2
    per_frame = special + rows_ * cols
    head_dim = attention.qkv.in_features // attention.num_heads
    rope = rope_tables(token_positions(rows_, cols, special), head_dim, 100.0).repeat(frames)
    x = torch.randn(1, frames * per_frame, attention.qkv.in_features)
    mask = torch.arange(frames).repeat_interleave(per_frame)
    mask = mask[:, None] >= mask[None, :]
    heads_out = {}
    attention.proj.register_forward_pre_hook(lambda _m, args: heads_out.update(x=args[0]))
    attention(x, rope, mask)
    logits = head_logits(attention, x, rope, MATCH_HEAD).masked_fill(~mask, float('-inf'))
    values = attention.qkv(x).reshape(1, len(mask), 3, attention.num_heads, head_dim)
    expected = logits.softmax(-1) @ values[:, :, 2, MATCH_HEAD]
    span = slice(MATCH_HEAD * head_dim, (MATCH_HEAD + 1) * head_dim)
    torch.testing.assert_close(heads_out['x'][..., span], expected, atol=1e-5, rtol=1e-5)


def test_a_run_with_correspondence_scores_both_terms_and_resumes_as_the_straight_one(tmp_path):
    bag = write_bag(make_sequence('rotate', 10, 112, 84), tmp_path / 'rotate')
    extra = ('--correspondence', '0,1', '--max-stride', '2', '--val', str(bag))
    run(bag, tmp_path / 'straight', 4, *extra)
    run(bag, tmp_path / 'resumed', 2, *extra)
    run(bag, tmp_path / 'resumed', 4, '--resume', *extra)
    straight = rows(tmp_path / 'straight')
    assert straight == rows(tmp_path / 'resumed')
    assert all(np.isfinite(float(row[term])) for row in straight for term in ('match', 'flow'))
    state = load_file(tmp_path / 'straight' / trainer.STATE_FILE)
    assert {'correspondence.flow_readout.weight'} <= set(state)
    weights = load_file(tmp_path / 'straight' / trainer.WEIGHTS_FILE)
    assert set(weights) == set(StreamVGGT('tiny').state_dict())  # nothing training-only shipped


def test_the_flow_readout_of_a_preset_with_a_flow_head_trains_that_head():
    model = StreamVGGT('small')
    loss = CorrespondenceLoss(model, (0,))
    assert loss.flow_readout is model.flow_head.proj
    tiny = StreamVGGT('tiny')  # no flow head: a readout of its own, not in the model
    assert CorrespondenceLoss(tiny, (0,)).flow_readout not in list(tiny.modules())


def test_correspondence_blocks_outside_the_preset_are_refused_before_any_bag_is_read():
    blocks = trainer.PRESETS['tiny'].depth
    with pytest.raises(SystemExit):
        trainer.parse_args(['missing.bag', '--preset', 'tiny', '--correspondence', f'0,{blocks}'])
    with pytest.raises(SystemExit):
        trainer.parse_args(['missing.bag', '--preset', 'tiny', '--correspondence', '-1'])
    args = trainer.parse_args(
        ['missing.bag', '--preset', 'tiny', '--correspondence', f'{blocks - 1}']
    )
    assert args.correspondence == (blocks - 1,)
