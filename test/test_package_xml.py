"""package.xml declares exactly what the code imports, so rosdep installs what the node needs.

A new import without a package.xml entry, or an entry nothing imports any more, fails here by
name. Imports are read with ast (lazy ones inside functions included), never executed.
"""

import ast
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME_SOURCES = ('vggt_ros', 'launch')
TEST_SOURCES = ('test',)

# Python libraries by their rosdep keys; any other import is a ROS package, keyed by its own name.
ROSDEP_KEYS = {
    'numpy': 'python3-numpy',
    'scipy': 'python3-scipy',
    'cv2': 'python3-opencv',
    'PIL': 'python3-pil',
    'yaml': 'python3-yaml',
    'matplotlib': 'python3-matplotlib',
    'tqdm': 'python3-tqdm',
    'pytest': 'python3-pytest',
    'hypothesis': 'python3-hypothesis',
}
# No rosdep key in the standard rosdistro: pip installs these (requirements/constraints.txt).
PIP_ONLY = {
    'torch': 'robots bring their own CUDA build, which a distro package would clash with',
    'rosbags': 'the ROS-free bag reader/writer of vggt_ros.evaluation is on PyPI only',
    'evo': 'the trajectory metrics of vggt_ros.evaluation are on PyPI only',
    'safetensors': 'the checkpoint file format is on PyPI only',
    'huggingface_hub': 'the checkpoint download client is on PyPI only',
}


def imported_roots(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level module of every absolute import -> the files importing it.

    The standard library, vggt_ros itself and the test helpers beside this file are left out.
    """
    local = {'vggt_ros'} | {path.stem for path in (REPO / 'test').glob('*.py')}
    roots: dict[str, set[str]] = defaultdict(set)
    for folder in folders:
        for path in sorted((REPO / folder).rglob('*.py')):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    root = module.partition('.')[0]
                    if root not in sys.stdlib_module_names and root not in local:
                        roots[root].add(str(path.relative_to(REPO)))
    return roots


def package_xml() -> ET.Element:
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    return ET.parse(REPO / 'package.xml', parser).getroot()


def declared(tag: str) -> list[str]:
    return [element.text.strip() for element in package_xml().iter(tag)]


def expected_keys(roots: dict[str, set[str]]) -> dict[str, set[str]]:
    """rosdep key -> the files whose imports need it (pip-only modules have none)."""
    keys: dict[str, set[str]] = defaultdict(set)
    for root, files in roots.items():
        if root not in PIP_ONLY:
            keys[ROSDEP_KEYS.get(root, root)] |= files
    return keys


def mismatch(tag: str, expected: dict[str, set[str]], found: list[str]) -> str:
    missing = sorted(set(expected) - set(found))
    stale = sorted(set(found) - set(expected))
    lines = []
    for key in missing:
        line = f'<{tag}>{key}</{tag}> missing (needed by {", ".join(sorted(expected[key]))})'
        if key not in ROSDEP_KEYS.values():
            line += '; if it is not a ROS package, map it in ROSDEP_KEYS or PIP_ONLY of this test'
        lines.append(line)
    lines += [f'<{tag}>{key}</{tag}> is stale: nothing imports it' for key in stale]
    return '\n'.join(lines)


def launched_packages() -> dict[str, set[str]]:
    """Packages the launch files start (`package=` of a call), other than vggt_ros itself."""
    packages: dict[str, set[str]] = defaultdict(set)
    for path in sorted((REPO / 'launch').glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for keyword in node.keywords if isinstance(node, ast.Call) else ():
                value = keyword.value
                if keyword.arg == 'package' and isinstance(value, ast.Constant):
                    packages[value.value].add(str(path.relative_to(REPO)))
    packages.pop('vggt_ros', None)
    return packages


def test_exec_depends_are_exactly_the_runtime_imports_and_launched_packages():
    expected = expected_keys(imported_roots(RUNTIME_SOURCES))
    for package, files in launched_packages().items():
        expected[package] |= files
    found = declared('exec_depend')
    assert set(found) == set(expected), mismatch('exec_depend', expected, found)


def test_test_depends_are_exactly_the_test_only_imports():
    runtime = imported_roots(RUNTIME_SOURCES)
    test_only = {
        root: files for root, files in imported_roots(TEST_SOURCES).items() if root not in runtime
    }
    expected = expected_keys(test_only)
    found = declared('test_depend')
    assert set(found) == set(expected), mismatch('test_depend', expected, found)


def test_no_dependency_is_declared_twice():
    found = declared('exec_depend') + declared('test_depend') + declared('depend')
    assert len(found) == len(set(found)), sorted(k for k in set(found) if found.count(k) > 1)


def test_pip_only_modules_are_imported_pinned_and_documented():
    imported = imported_roots(RUNTIME_SOURCES).keys() | imported_roots(TEST_SOURCES).keys()
    constraints = (REPO / 'requirements' / 'constraints.txt').read_text()
    pinned = {
        name.lower().replace('-', '_') for name in re.findall(r'^([\w.-]+)==', constraints, re.M)
    }
    comments = ' '.join(element.text for element in package_xml().iter(ET.Comment) if element.text)
    for module in PIP_ONLY:
        assert module in imported, f'{module} is in PIP_ONLY but nothing imports it any more'
        assert module.lower() in pinned, f'{module} is not pinned in requirements/constraints.txt'
        assert re.search(rf'\b{module}\b', comments), f'no package.xml comment says {module} is pip'
