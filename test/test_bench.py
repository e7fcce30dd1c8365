"""vggt-bench on the tiny preset at minimal sizes: report structure, the reference-style step
giving our outputs, merged steps caching fewer tokens. Times are never asserted (they belong to
the benchmark, not to tests)."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vggt_ros.bench import accuracy as bench_accuracy
from vggt_ros.bench import (
    baselines,
    blocks,
    cli,
    flops,
    gpu,
    harness,
    heads,
    memory,
    report,
    streams,
    token_merging,
)
from vggt_ros.model import PRESETS
from vggt_ros.model.merging import token_counts
from vggt_ros.model.synthetic_weights import synthetic_model

SIZE = (28, 42)  # 2 x 3 patches: 11 tokens per frame
TOKENS = 11
WINDOW, CACHED, REPEATS = 2, 4, 2
MERGE_SIZE = (56, 84)  # 4 x 6 patches: 29 tokens, 13 kept when merged
MERGE_WINDOWS = (2, 3)
EVAL_FRAMES = 60


pytestmark = pytest.mark.usefixtures('single_torch_thread')


@pytest.fixture(scope='module')
def model():
    return synthetic_model('tiny')


@pytest.fixture(scope='module')
def result(model):
    return streams.bench_model(model, SIZE, WINDOW, CACHED, REPEATS, warmup=1)


def assert_stats(figure):
    assert set(figure) == {'min', 'median', 'max'}
    assert 0 < figure['min'] <= figure['median'] <= figure['max']


def test_flat_cost_compares_frame_w_with_frame_8w(result):
    assert set(result['flat_cost']) == {'window', 'unbounded'}
    for cost in result['flat_cost'].values():
        assert cost['frames'] == [WINDOW, 8 * WINDOW]
        for figure in cost['step_s']:
            assert_stats(figure)
        assert cost['ratio'] == cost['step_s'][1]['median'] / cost['step_s'][0]['median']


def test_reference_style_step_is_timed_at_the_cached_frame_with_our_outputs(result):
    reference = result['reference']
    assert reference['frame'] == CACHED
    assert_stats(reference['ours_s'])
    assert_stats(reference['reference_s'])
    assert reference['max_abs_difference'] <= 1e-6


def test_series_repeat_only_the_timed_frames(result):
    series = result['series']
    for name in ('window', 'unbounded'):
        assert series[name]['first_frame'] == 1
        assert len(series[name]['step_s']) == len(series[name]['cache_bytes']) == 8 * WINDOW
        steps = enumerate(series[name]['step_s'], start=1)
        repeated = [frame for frame, times in steps if len(times) > 1]
        assert repeated == sorted({CACHED, 8 * WINDOW})
    for name, frame in (('window_at_W', WINDOW), ('unbounded_at_W', WINDOW), ('reference', CACHED)):
        assert series[name]['first_frame'] == frame
        assert [len(times) for times in series[name]['step_s']] == [REPEATS]


def test_kv_bytes_match_the_closed_form(model, result):
    kv = result['kv_bytes']
    config = model.config
    reference_bf16 = 2 * config.depth * config.embed_dim * 2 * TOKENS
    assert result['tokens_per_frame'] == TOKENS
    assert kv['reference_per_frame_bf16'] == kv['ours_per_frame_bf16'] == reference_bf16
    assert kv['ours_per_frame'] == kv['reference_style_per_frame'] == 2 * reference_bf16  # fp32
    assert kv['window_growth_after_fill'] == 0
    assert kv['frames'] == 8 * WINDOW
    assert kv['window_total'] < kv['unbounded_total']


def test_reference_style_session_reproduces_ours_from_the_first_frame(model):
    images = torch.rand(4, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    ours = model.new_session()
    reference = baselines.fork_reference_style(model.new_session(), SIZE)
    for image in images:
        assert harness.max_difference(reference.step(image), ours.step(image)) <= 1e-6
    config = model.config
    head_dim = config.embed_dim // config.num_heads
    assert reference.caches[0][0].keys.shape == (1, config.num_heads, 4, TOKENS, head_dim)
    assert reference.window_fill == 4
    reference.reset()
    assert reference.window_fill == 0 and reference.caches[0].nbytes == 0


def test_block_vs_reference_times_both_at_the_cached_frame():
    section = blocks.block_vs_reference(PRESETS['tiny'], SIZE, CACHED, REPEATS)
    assert section['tokens_per_frame'] == TOKENS
    assert section['cached_frames'] == CACHED
    assert section['cached_tokens'] == CACHED * TOKENS  # the window stays full, never grows
    assert_stats(section['ours_s'])
    assert_stats(section['reference_s'])
    assert section['ratio'] == section['reference_s']['median'] / section['ours_s']['median']


def assert_merging_rows(rows, tokens, kept):
    """Off caches W whole frames, on the anchor whole and W - 1 merged frames; both timed."""
    assert [row['window'] for row in rows] == list(MERGE_WINDOWS)
    for row in rows:
        window = row['window']
        assert row['off']['cached_tokens'] == window * tokens
        assert row['on']['cached_tokens'] == tokens + (window - 1) * kept < window * tokens
        assert_stats(row['off']['step_s'])
        assert_stats(row['on']['step_s'])
        assert row['ratio'] == row['off']['step_s']['median'] / row['on']['step_s']['median']
        assert row['flops_ratio'] == row['flops_off'] / row['flops_on'] > 1


def test_block_merging_caches_fewer_tokens_per_merged_frame():
    config = PRESETS['tiny']
    section = token_merging.block_merging(config, MERGE_SIZE, MERGE_WINDOWS, REPEATS)
    kept = token_counts(token_merging.MERGING, 4, 6, 5).kept
    assert section['tokens_per_frame'] == 29 and section['kept_per_merged_frame'] == kept == 13
    assert_merging_rows(section['windows'], 29, kept)
    assert section['target'] == {
        'window': token_merging.MERGE_TARGET_WINDOW,
        'target': token_merging.MERGE_TARGET,
        'ratio': None,
        'met': None,
    }


def test_merging_target_reads_the_target_window():
    rows = [{'window': token_merging.MERGE_TARGET_WINDOW, 'ratio': token_merging.MERGE_TARGET}]
    assert token_merging.merging_target(rows)['met'] is True
    rows[0]['ratio'] = 0.99 * token_merging.MERGE_TARGET
    assert token_merging.merging_target(rows)['met'] is False


def test_merging_steps_stream_sessions_off_and_on(model):
    section = token_merging.merging_steps(model, MERGE_SIZE, MERGE_WINDOWS, REPEATS)
    assert section['tokens_per_frame'] == 29 and section['repeats'] == REPEATS
    assert_merging_rows(section['windows'], 29, 13)


def test_main_writes_json_and_markdown(tmp_path, capsys):
    cli.main(
        ['--presets', 'tiny', '--tiny-size', '28x42', '--window', '2', '--cached', '3']
        + ['--tiny-repeats', '2', '--warmup', '0', '--out', str(tmp_path)]
        + ['--block-size', '28x42', '--block-repeats', '1', '--merge-windows', '2', '32']
        + ['--memory-frames', '64', '--node-frames', '1', '--gpu-frames', '1']
        + ['--chaos-frames', '60', '--heads-preset', 'tiny', '--heads-size', '28x42']
        + ['--eval-frames', str(EVAL_FRAMES)]
        + ['--reanchor-frames', '30', '--reanchor-every', '10']
        + ['--accuracy-frames', '4', '--accuracy-worlds', '1']
    )
    written = json.loads((tmp_path / 'bench.json').read_text())
    assert [result['preset'] for result in written['results']] == ['tiny']
    assert [result['preset'] for result in written['merging_steps']] == ['tiny']
    assert written['global_block']['cached_frames'] == 3
    assert written['block_merging']['target']['met'] in (True, False)
    assert written['environment']['threads'] == 1
    markdown = (tmp_path / 'bench.md').read_text()
    assert markdown == report.markdown(written)
    assert markdown in capsys.readouterr().out
    headings = ('## 1.', '## 2.', '## 3.', '## 4.', '## 5.', '(a) ', '(b) ', 'Target at window 32')
    headings += ('(d)/(a)', '## 6.', '## 7.', '## 8.', '## 9.', '## 10.', '## 11.', '## 12.')
    headings += ('## 13.', '## 14.')
    assert all(heading in markdown for heading in headings)
    chaos = written['chaos']
    assert chaos['stuck_periods'] == 0 and chaos['counts']['received'] >= 60
    counts = chaos['counts']
    accounted = sum(counts[name] for name in ('processed', 'dropped', 'skipped', 'failed'))
    assert counts['received'] == accounted and counts['failed'] > 0
    assert written['heads']['preset'] == 'tiny' and written['heads']['frames'] == 2
    evaluator = written['evaluator']
    assert evaluator['processed'] == evaluator['depth_scored'] == EVAL_FRAMES  # depth scored
    assert evaluator['warmup_frames'] == EVAL_FRAMES // 10
    assert 0 < evaluator['rss_warmup_end'] and 0 < evaluator['rss_end']
    reanchoring = written['reanchoring']
    assert reanchoring['reanchors'] >= 2 and reanchoring['frames'] == 30
    assert set(reanchoring['lanes']) == {'fixed anchor', 're-anchoring'}
    accuracy = written['accuracy']
    assert set(accuracy['options']) == set(bench_accuracy.OPTIONS)
    deployed = accuracy['options'][bench_accuracy.DEPLOYED]
    assert deployed['delta_abs_rel'] == 0 and deployed['speed_ratio'] == 1
    assert all(0 < row['abs_rel'] < 1 for row in accuracy['options'].values())


def test_heads_on_demand_times_the_point_head_beside_the_needed_ones(model):
    section = heads.heads_on_demand(model, SIZE, frames=REPEATS, window=WINDOW)
    assert section['heads'] == {'needed': ['camera', 'depth'], 'all': ['camera', 'depth', 'point']}
    assert_stats(section['needed_s'])
    assert_stats(section['all_s'])
    assert section['all_over_needed'] == section['all_s']['median'] / section['needed_s']['median']
    assert section['point_host_bytes_per_frame'] == (3 + 1) * 4 * SIZE[0] * SIZE[1]
    assert section['max_abs_difference'] == 0  # the heads share nothing but their inputs
    assert report.heads_markdown({'preset': 'tiny', **section})[1].startswith('## 11.')


def test_bad_size_is_a_usage_error():
    with pytest.raises(SystemExit):
        cli.parse_args(['--size', '42'])


def test_frame_n_times_the_naive_window_beside_ours(result):
    at = result['at_frame_n']
    assert at['frame'] == 8 * WINDOW and at['reference_frame'] == CACHED
    for name in ('window', 'unbounded', 'naive'):
        assert_stats(at[f'{name}_s'])
    assert at['naive_over_window'] == at['naive_s']['median'] / at['window_s']['median']
    assert [len(times) for times in result['series']['naive']['step_s']] == [REPEATS]


def test_closed_form_dpt_flops_match_a_counted_step(model):
    session, image = model.new_session(), torch.rand(3, *MERGE_SIZE)
    session.step(image)
    with FlopCounterMode(display=False) as counter:
        session.step(image)
    counted = sum(counter.get_flop_counts()['DPTHead'].values())
    parts = flops.model_flops(model.config, MERGE_SIZE, frames=2)
    assert parts['dpt_heads'] == pytest.approx(counted, rel=0.01)
    assert parts['total'] == sum(value for name, value in parts.items() if name != 'total')


def test_efficiency_and_memory_sections():
    matmul = flops.matmul_throughput(2, size=(64, 64, 64))
    assert matmul['flops_per_s'] > 0
    step = {'min': 0.01, 'median': 0.01, 'max': 0.01}
    eff = flops.efficiency(PRESETS['tiny'], SIZE, WINDOW, step, matmul)
    assert eff['fraction_of_matmul'] == eff['achieved_flops_per_s'] / matmul['flops_per_s']
    growth = memory.memory_growth(synthetic_model('tiny'), SIZE, WINDOW, frames=16)
    assert growth['cache_slope_bytes_per_frame'] == pytest.approx(0, abs=1e-6)
    assert growth['rss_first_last'][0] > 0


def test_node_overhead_through_real_rclpy(model):
    from vggt_ros.bench import node  # noqa: PLC0415 - the benchmark imports it only with rclpy

    section = node.node_overhead(model, repeats=2, frames=2, results=[])
    assert_stats(section['publishing']['total_s'])
    assert_stats(section['end_to_end']['overhead_s'])
    sizes = [row['input_size'] for row in section['cost']]
    assert sizes == [list(size) for size in node.INPUT_SIZES]
    for row in section['cost']:
        assert_stats(row['node_s'])
        assert row['ratio'] == row['node_s']['median'] / row['memcpy_s']['median'] > 1
        # the input image, depth (4 B/px) and the cloud (16 B/px) at the model's size at least
        height, width = row['model_size']
        assert row['bytes'] >= 3 * row['input_size'][0] * row['input_size'][1] + 20 * height * width
    lines = report.node_markdown(section)
    assert lines[1].startswith('## 7.') and any('node / memcpy' in line for line in lines)


def test_gpu_section_says_when_it_skipped():
    if torch.cuda.is_available():
        pytest.skip('a GPU is present: section 9 runs in the benchmark')
    assert 'skipped' in gpu.gpu_frames_per_s(1)
