"""The RunSpec rules: binds deduplicated, the working directory always usable, clean env."""

from __future__ import annotations

from pathlib import Path

from neurodesk.runtime.spec import Bind, RunSpec, build_runspec, dedupe_binds
from neurodesk.store import ImageRecord


def record(tmp_path: Path, env: dict[str, str] | None = None) -> ImageRecord:
    return ImageRecord("tool", "1.0", "20260101", "sha256:" + "0" * 64, tmp_path, env or {})


def test_bind_parse_forms() -> None:
    assert Bind.parse("/data") == Bind("/data", "/data")
    assert Bind.parse("/data:/mnt") == Bind("/data", "/mnt")
    assert Bind.parse("/data:/mnt:ro") == Bind("/data", "/mnt", readonly=True)


def test_dedupe_drops_repeats_and_binds_inside_other_binds() -> None:
    binds = [
        Bind("/home/u", "/home/u"),
        Bind("/home/u/proj", "/home/u/proj"),
        Bind("/home/u", "/home/u"),
    ]
    assert dedupe_binds(binds) == [Bind("/home/u", "/home/u")]


def test_bindpath_variables_are_all_honoured_and_deduplicated(tmp_path: Path) -> None:
    environ = {
        "HOME": "/home/u",
        "NEURODESK_BINDPATH": "/data,/scratch:/scratch",
        "APPTAINER_BINDPATH": "/data",
        "SINGULARITY_BINDPATH": "/refs:/refs:ro",
    }
    spec = build_runspec(record(tmp_path), ["x"], cwd="/home/u/work", environ=environ)
    dsts = [b.dst for b in spec.binds]
    assert dsts.count("/data") == 1
    assert "/scratch" in dsts and "/refs" in dsts
    assert Bind("/refs", "/refs", readonly=True) in spec.binds
    assert "/home/u/work" not in dsts  # inside $HOME, which is bound already


def test_cwd_outside_home_is_bound_but_never_over_system_dirs(tmp_path: Path) -> None:
    environ = {"HOME": "/home/u"}
    spec = build_runspec(record(tmp_path), ["x"], cwd="/work/project", environ=environ)
    assert Bind("/work/project", "/work/project") in spec.binds
    image = record(tmp_path)
    (image.rootfs / "usr" / "share").mkdir(parents=True)
    spec = build_runspec(image, ["x"], cwd="/usr/share", environ=environ)
    assert all(b.dst != "/usr/share" for b in spec.binds)
    # a system path the image lacks hides nothing of it: bound, so the command can start there
    spec = build_runspec(image, ["x"], cwd="/usr/local/project", environ=environ)
    assert Bind("/usr/local/project", "/usr/local/project") in spec.binds


def test_environment_is_clean_and_deploy_env_applied(tmp_path: Path) -> None:
    image_env = {"PATH": "/opt/tool/bin:/usr/bin", "DEPLOY_ENV_FSLDIR": "/opt/fsl"}
    environ = {"HOME": "/h", "SECRET_TOKEN": "x", "DISPLAY": ":1", "LC_ALL": "C", "TERM": "xterm"}
    spec = build_runspec(record(tmp_path, image_env), ["x"], cwd="/h", environ=environ)
    assert "SECRET_TOKEN" not in spec.env
    assert spec.env["FSLDIR"] == "/opt/fsl"
    assert spec.env["PATH"] == "/opt/tool/bin:/usr/bin"
    assert spec.env["DISPLAY"] == ":1" and spec.env["LC_ALL"] == "C" and spec.env["TERM"] == "xterm"
    assert spec.env["HOME"] == "/h"


# -- identity, GPU, splaying, backend translations -----------------------------------------


def test_identity_files_add_the_user_only_when_the_image_lacks_them(tmp_path: Path) -> None:
    from neurodesk.runtime.spec import identity_files

    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nold:x:4321:1:o:/:/x\n")
    (rootfs / "etc/group").write_text("root:x:0:\n")
    assert identity_files(rootfs, 0, 0, "root", "root", "/root") == {}
    files = identity_files(rootfs, 4321, 4321, "alice", "lab", "/home/alice")
    assert files["/etc/passwd"].splitlines() == [
        "root:x:0:0:root:/root:/bin/bash",
        "alice:x:4321:4321:alice:/home/alice:/bin/sh",  # the clashing uid 4321 entry replaced
    ]
    assert files["/etc/group"].splitlines() == ["root:x:0:", "lab:x:4321:"]


def test_identity_files_read_through_a_store_rootfs_link_but_not_an_image_link(
    tmp_path: Path,
) -> None:
    """A SIF held in the store has ``rootfs -> mnt/sif``: its users are read through that link
    (else every call of its wrappers made up a passwd and group, two more binds); a symlink
    inside the image (an /etc pointing elsewhere) is still never followed."""
    from neurodesk.runtime.spec import identity_files

    (tmp_path / "mnt/sif/etc").mkdir(parents=True)
    (tmp_path / "mnt/sif/etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "mnt/sif/etc/group").write_text("root:x:0:\n")
    (tmp_path / "rootfs").symlink_to("mnt/sif")
    assert identity_files(tmp_path / "rootfs", 0, 0, "root", "root", "/root") == {}
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "etc").symlink_to(tmp_path / "mnt/sif/etc")
    files = identity_files(linked, 0, 0, "root", "root", "/root")
    assert files["/etc/passwd"] == "root:x:0:0:root:/root:/bin/sh\n"


def fake_dev(tmp_path: Path, names: list[str]) -> Path:
    dev = tmp_path / "dev"
    for name in names:
        (dev / name).parent.mkdir(parents=True, exist_ok=True)
        (dev / name).touch()
    return dev


def test_gpu_binds_from_a_fake_dev_tree_and_driver_dirs(tmp_path: Path) -> None:
    from neurodesk.runtime.gpu import GPU_BIN_DIR, GPU_LIB_DIR, gpu_setup

    dev = fake_dev(
        tmp_path,
        ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-caps/nvidia-cap1", "sda", "null"],
    )
    libs = tmp_path / "lib"
    libs.mkdir()
    for name in ("libcuda.so.535.1", "libnvidia-ml.so.1", "libGLX_nvidia.so.0", "libc.so.6"):
        (libs / name).touch()
    bins = tmp_path / "bin"
    bins.mkdir()
    (bins / "nvidia-smi").touch(mode=0o755)
    setup = gpu_setup(dev, (str(libs),), (str(bins),))
    assert setup.devices == [
        str(dev / n)
        for n in ("nvidia-caps/nvidia-cap1", "nvidia-uvm", "nvidia0", "nvidia1", "nvidiactl")
    ]
    assert sorted(setup.libraries) == [
        f"{GPU_LIB_DIR}/libGLX_nvidia.so.0",
        f"{GPU_LIB_DIR}/libcuda.so.535.1",
        f"{GPU_LIB_DIR}/libnvidia-ml.so.1",
    ]
    assert setup.tools == {f"{GPU_BIN_DIR}/nvidia-smi": str(bins / "nvidia-smi")}
    env = setup.env({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib"})
    assert env == {"LD_LIBRARY_PATH": f"{GPU_LIB_DIR}:/opt/lib", "PATH": f"{GPU_BIN_DIR}:/usr/bin"}


def test_gpu_without_devices_is_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from neurodesk.runtime.gpu import NoGPUError

    dev = fake_dev(tmp_path, ["null", "sda"])
    with pytest.raises(NoGPUError, match="no NVIDIA GPU"):
        build_runspec(record(tmp_path), ["x"], cwd="/", environ={"HOME": "/h"}, gpu=True,
                      dev_root=dev)  # fmt: skip


def test_gpu_runspec_carries_devices_and_library_binds(tmp_path: Path) -> None:
    dev = fake_dev(tmp_path, ["nvidia0", "nvidiactl"])
    spec = build_runspec(
        record(tmp_path), ["x"], cwd="/", environ={"HOME": "/h"}, gpu=True, dev_root=dev
    )
    assert spec.devices == [str(dev / "nvidia0"), str(dev / "nvidiactl")]
    assert spec.gpu


def image_tree(tmp_path: Path) -> Path:
    rootfs = tmp_path / "img"
    for d in ("usr/bin", "usr/local/bin", "opt/fsl/bin", "home", "etc"):
        (rootfs / d).mkdir(parents=True)
    (rootfs / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (rootfs / "bin").symlink_to("usr/bin")
    return rootfs


def test_splay_points_only_where_a_mount_point_is_missing(tmp_path: Path) -> None:
    from neurodesk.runtime.bwrap import splay_points

    rootfs = image_tree(tmp_path)
    assert splay_points(rootfs, ["/opt/x"]) == {"/opt"}
    assert splay_points(rootfs, ["/usr/local/proj/sub"]) == {"/usr", "/usr/local"}
    assert splay_points(rootfs, ["/opt/fsl", "/etc/passwd", "/home/u", "/new/dir", "/tmp/x"]) == {
        "/home"  # empty: laid out as --dir either way
    }
    assert splay_points(rootfs, ["/bin/x"]) == set()  # through an image symlink: left alone


def test_image_args_splay_binds_each_child(tmp_path: Path) -> None:
    from neurodesk.runtime.bwrap import image_args

    rootfs = image_tree(tmp_path)
    args = image_args(rootfs, "$R", splay={"/opt"})
    assert args[:4] != ["--dir", "/opt", "--dir", "/opt/fsl"]
    text = " ".join(args)
    assert "--dir /opt --ro-bind $R/opt/fsl /opt/fsl" in text
    assert "--ro-bind $R/usr /usr" in text and "--symlink usr/bin /bin" in text
    assert "--dir /home" in text
    assert "--ro-bind $R/opt /opt" not in text


def test_bwrap_argv_binds_cwd_data_files_and_devices(tmp_path: Path) -> None:
    from neurodesk.runtime.bwrap import bwrap_argv
    from neurodesk.runtime.spec import RunSpec

    rootfs = image_tree(tmp_path)
    (tmp_path / "work").mkdir()
    spec = RunSpec(
        rootfs=rootfs,
        argv=["tool", "a b"],
        cwd="/opt/work",
        binds=[Bind(str(tmp_path / "work"), "/opt/work")],
        env={"A": "1"},
        devices=["/dev/null"],
    )
    args = bwrap_argv(spec, {"/etc/passwd": 7})
    text = " ".join(args)
    assert f"--bind {tmp_path}/work /opt/work" in text
    assert "--dir /opt --ro-bind" in text  # /opt splayed for the mount point
    assert "--ro-bind-data 7 /etc/passwd" in text and "--dev-bind /dev/null /dev/null" in text
    assert args[-2:] == ["tool", "a b"] and "--clearenv" in args


def sample_spec(tmp_path: Path) -> RunSpec:
    data = tmp_path / "data"
    (data / "refs").mkdir(parents=True)
    return RunSpec(
        rootfs=tmp_path / "rootfs",
        argv=["bet", "in.nii", "out"],
        cwd="/data/sub-01",
        binds=[
            Bind(str(data), "/data"),
            Bind(str(data / "refs"), "/refs", readonly=True),
            Bind("/nonexistent-on-this-host", "/gone"),  # skipped, as bwrap does
        ],
        env={"HOME": "/home/u", "FSLDIR": "/opt/fsl", "PATH": "/opt/fsl/bin:/usr/bin"},
        gpu=True,
        image="fsl_6.0.7_20240101",
    )


def test_apptainer_translation(tmp_path: Path) -> None:
    from neurodesk.runtime.apptainer import apptainer_argv

    spec = sample_spec(tmp_path)
    spec.writable_tmpfs = True
    assert apptainer_argv(spec, "/usr/bin/apptainer") == [
        "/usr/bin/apptainer", "exec", "--cleanenv", "--home", "/home/u",
        "--bind", f"{tmp_path}/data:/data", "--bind", f"{tmp_path}/data/refs:/refs:ro",
        "--env", "FSLDIR=/opt/fsl", "--env", "PATH=/opt/fsl/bin:/usr/bin",
        "--nv", "--writable-tmpfs", "--pwd", "/data/sub-01", str(tmp_path / "rootfs"),
        "bet", "in.nii", "out",
    ]  # fmt: skip


def test_podman_and_docker_translation(tmp_path: Path) -> None:
    from neurodesk.runtime.oci import docker_argv, podman_argv

    spec = sample_spec(tmp_path)
    spec.devices = ["/dev/nvidia0"]
    podman = podman_argv(spec, "podman")
    text = " ".join(podman)
    assert podman[:2] == ["podman", "run"]
    assert "--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=1024:1024" in text
    assert f"-v {tmp_path}/data:/data -v {tmp_path}/data/refs:/refs:ro --device" in text
    assert "/gone" not in text
    assert "-e FSLDIR=/opt/fsl" in text and "-w /data/sub-01" in text and "--read-only" in text
    assert podman[-4:] == [f"{tmp_path}/rootfs:O", "bet", "in.nii", "out"]
    docker = docker_argv(spec, "docker")
    assert docker[-4:] == ["neurodesk/fsl_6.0.7_20240101", "bet", "in.nii", "out"]
    assert "--rootfs" not in docker and f"-v {tmp_path}/data/refs:/refs:ro" in " ".join(docker)


def test_apptainerenv_variables_and_x11_binds(tmp_path: Path) -> None:
    environ = {
        "HOME": "/h",
        "APPTAINERENV_FOO": "1",
        "SINGULARITYENV_BAR": "2",
        "DISPLAY": ":0",
        "XAUTHORITY": "/run/user/1/xauth",
    }
    spec = build_runspec(record(tmp_path), ["x"], cwd="/h", environ=environ)
    assert spec.env["FOO"] == "1" and spec.env["BAR"] == "2" and spec.x11
    assert Bind("/run/user/1/xauth", "/run/user/1/xauth", readonly=True) in spec.binds
    assert all(b.dst != "/tmp/.X11-unix" for b in spec.binds)  # inside /tmp, bound already


def test_runtime_choice_order_and_the_per_boot_probe_cache(tmp_path: Path) -> None:
    import os
    import shutil

    import pytest

    from neurodesk.errors import NeurodeskError
    from neurodesk.runtime.launch import choose_runtime, probe_cache, userns_works

    if shutil.which("bwrap") is None:
        pytest.skip("bwrap is not installed")
    environ = {"XDG_RUNTIME_DIR": str(tmp_path)}
    cache = probe_cache(environ)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    cache.write_text(f"{boot} no\n")  # as if bwrap could not make a user namespace here
    assert userns_works("bwrap", environ) is False  # the cached answer, no probe
    cache.write_text("another-boot yes\n")
    assert userns_works(shutil.which("bwrap") or "", environ) == (
        cache.read_text().split()[1] == "yes"
    )
    assert cache.read_text().startswith(boot)  # probed again and cached for this boot
    assert choose_runtime("bwrap").name == "bwrap"
    assert choose_runtime(None, {"NEURODESK_RUNTIME": "bwrap"}).name == "bwrap"
    with pytest.raises(NeurodeskError, match="unknown runtime"):
        choose_runtime(None, {"NEURODESK_RUNTIME": "nope"})
    assert os.stat(cache).st_uid == os.geteuid()


def test_bind_specs_only_ro_or_rw_and_never_empty() -> None:
    import pytest

    from neurodesk.runtime.spec import BindSpecError

    assert Bind.parse("/data:/d:rw") == Bind("/data", "/d")
    for bad in ("", ":::", "/a:/b:readonly", "/a:/b:ro:x", "data:/x", "/a:rel"):
        with pytest.raises(BindSpecError):
            Bind.parse(bad)


def test_read_only_inputs_stay_over_broader_read_write_binds(tmp_path: Path) -> None:
    environ = {"HOME": "/home/u"}
    binds = [Bind("/home/u/data/in", "/home/u/data/in", readonly=True), Bind("/out", "/out")]
    spec = build_runspec(record(tmp_path), ["x"], cwd="/out", environ=environ, binds=binds)
    order = [b.dst for b in spec.binds]
    assert Bind("/home/u/data/in", "/home/u/data/in", readonly=True) in spec.binds
    assert order.index("/home/u") < order.index("/home/u/data/in")
