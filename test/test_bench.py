"""vggt-bench on the tiny preset at minimal sizes: report structure, and the reference-style step
giving our outputs. Times are never asserted (they belong to the benchmark, not to tests)."""

import json

import pytest
import torch

from vggt_ros import bench

SIZE = (28, 42)  # 2 x 3 patches: 11 tokens per frame
TOKENS = 11
WINDOW, CACHED, REPEATS = 2, 4, 2


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny steps are quickest on one thread, above all on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def model():
    return bench.build_model('tiny')


@pytest.fixture(scope='module')
def result(model):
    return bench.bench_model(model, SIZE, WINDOW, CACHED, REPEATS, warmup=1)


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
    reference = bench.fork_reference_style(model.new_session(), SIZE)
    for image in images:
        assert bench.max_difference(reference.step(image), ours.step(image)) <= 1e-6
    config = model.config
    head_dim = config.embed_dim // config.num_heads
    assert reference.caches[0][0].keys.shape == (1, config.num_heads, 4, TOKENS, head_dim)
    assert reference.window_fill == 4
    reference.reset()
    assert reference.window_fill == 0 and reference.caches[0].nbytes == 0


def test_main_writes_json_and_markdown(tmp_path, capsys):
    bench.main(
        ['--presets', 'tiny', '--tiny-size', '28x42', '--window', '2', '--cached', '3']
        + ['--tiny-repeats', '2', '--warmup', '0', '--out', str(tmp_path)]
    )
    report = json.loads((tmp_path / 'bench.json').read_text())
    assert [result['preset'] for result in report['results']] == ['tiny']
    assert report['environment']['threads'] == 1
    markdown = (tmp_path / 'bench.md').read_text()
    assert markdown == bench.markdown(report)
    assert markdown in capsys.readouterr().out
    assert all(heading in markdown for heading in ('## 1.', '## 2.', '## 3.'))


def test_bad_size_is_a_usage_error():
    with pytest.raises(SystemExit):
        bench.parse_args(['--size', '42'])
