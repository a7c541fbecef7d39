"""The built SD image under ``qemu-system-aarch64 -M virt``, handled from the outside.

The image is used as shipped (``.img.xz``): decompressed to a scratch copy, its kernel and
initrd read off the boot partition with mtools, files put on the boot partition with mtools
and on the root file system with debugfs - no loop devices, no mounts. A SIMCom emulator on
the host is attached through two virtio console ports: the guest sees them as ``/dev/hvc0``
(AT commands) and ``/dev/hvc1`` (voice), ttys that pyserial opens like the modem's
``/dev/ttyUSB*``. (A ``virtserialport`` would be a plain character device, ``/dev/vport*``,
that pyserial cannot configure: termios answers ENOTTY.)
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "image-build" / "build"


def project_version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert match, "no version in pyproject.toml"
    return match.group(1)


def built_image() -> Path:
    image = BUILD / f"appliance-{project_version()}-arm64.img.xz"
    if not image.exists():
        raise FileNotFoundError(f"{image.relative_to(REPO)} is missing: run `make image` first")
    return image


@dataclass(frozen=True)
class Partition:
    start: int  # bytes
    size: int  # bytes

    @property
    def mtools(self) -> str:
        """mtools' name for a file system inside an image file."""
        return f"@@{self.start}"


class Disk:
    """A scratch copy of the image, grown by ``grow_by`` bytes so first boot has room to grow."""

    def __init__(self, image_xz: Path, path: Path, grow_by: int) -> None:
        self.path = path
        with path.open("wb") as out:
            xz = subprocess.Popen(["xz", "-dc", str(image_xz)], stdout=subprocess.PIPE)
            subprocess.run(
                ["cp", "--sparse=always", "/dev/stdin", str(path)], stdin=xz.stdout, check=True
            )
            assert xz.wait() == 0, "xz failed"
            out.truncate(path.stat().st_size + grow_by)
        table = json.loads(
            subprocess.run(
                ["sfdisk", "--json", str(path)], check=True, capture_output=True, text=True
            ).stdout
        )
        sector = table["partitiontable"].get("sectorsize", 512)
        parts = table["partitiontable"]["partitions"]
        assert len(parts) == 2, f"expected boot and root partitions, got {parts}"
        self.boot, self.root = (Partition(p["start"] * sector, p["size"] * sector) for p in parts)

    # --- the FAT boot partition (mtools) ---

    def boot_files(self) -> list[str]:
        out = subprocess.run(
            ["mdir", "-b", "-i", f"{self.path}{self.boot.mtools}", "::"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return sorted(line.removeprefix("::/").strip() for line in out.splitlines() if line)

    def read_boot_file(self, name: str) -> bytes:
        return subprocess.run(
            ["mtype", "-i", f"{self.path}{self.boot.mtools}", f"::{name}"],
            check=True,
            capture_output=True,
        ).stdout

    def copy_boot_file(self, name: str, dest: Path) -> Path:
        subprocess.run(
            ["mcopy", "-n", "-i", f"{self.path}{self.boot.mtools}", f"::{name}", str(dest)],
            check=True,
        )
        return dest

    def put_boot_file(self, name: str, content: str, scratch: Path) -> None:
        local = scratch / name
        local.write_text(content)
        subprocess.run(
            ["mcopy", "-o", "-i", f"{self.path}{self.boot.mtools}", str(local), f"::{name}"],
            check=True,
        )

    # --- the ext4 root (debugfs) ---

    def put_root_files(self, files: dict[str, str], scratch: Path) -> None:
        """Write ``files`` (absolute path -> text) into the root file system, root-owned 0644."""
        commands = []
        for index, (path, text) in enumerate(sorted(files.items())):
            local = scratch / f"root-file-{index}"
            local.write_text(text)
            parent = ""
            for part in Path(path).parent.parts[1:]:
                parent += "/" + part
                commands.append(f"mkdir {parent}")  # an existing folder only warns
            commands += [f"write {local} {path}", f"set_inode_field {path} mode 0100644"]
        script = scratch / "debugfs-commands"
        script.write_text("\n".join(commands) + "\n")
        target = f"{self.path}?offset={self.root.start}"
        subprocess.run(
            ["debugfs", "-w", "-f", str(script), target], check=True, capture_output=True
        )
        for path in files:
            listing = subprocess.run(
                ["debugfs", "-R", f"stat {path}", target],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            assert "Type: regular" in listing, f"{path} not written: {listing}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VirtMachine:
    """``qemu-system-aarch64 -M virt`` booting ``disk`` with the image's own kernel and initrd;
    the serial console goes to ``console.log``."""

    def __init__(
        self,
        disk: Disk,
        kernel: Path,
        initrd: Path,
        cmdline: str,
        web_port: int,
        consoles: dict[str, str],
        workdir: Path,
    ) -> None:
        self.web_port = web_port
        self.console_path = workdir / "console.log"
        self.monitor_path = workdir / "monitor.sock"
        options = [
            ("-M", "virt"),
            ("-cpu", "cortex-a72"),
            ("-smp", "2"),
            ("-m", "1024"),
            ("-accel", "tcg,thread=multi"),
            ("-kernel", str(kernel)),
            ("-initrd", str(initrd)),
            ("-append", cmdline),
            ("-drive", f"if=none,id=disk,format=raw,file={disk.path}"),
            ("-device", "virtio-blk-pci,drive=disk"),
            ("-netdev", f"user,id=net,hostfwd=tcp:127.0.0.1:{web_port}-:80"),
            ("-device", "virtio-net-pci,netdev=net"),
            ("-device", "virtio-rng-pci"),
            # A watchdog for systemd's RuntimeWatchdogSec (the Pi's is bcm2835_wdt).
            ("-device", "i6300esb"),
            ("-device", "virtio-serial-pci"),
        ]
        for name, tty in consoles.items():
            options += [
                ("-chardev", f"serial,id={name},path={tty}"),
                ("-device", f"virtconsole,chardev={name},name={name}"),
            ]
        options += [
            ("-serial", f"file:{self.console_path}"),
            ("-monitor", f"unix:{self.monitor_path},server,nowait"),
            ("-display", "none"),
        ]
        command = ["qemu-system-aarch64", "-nodefaults", "-no-reboot"]
        for option in options:
            command += option
        self.command = command
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=(workdir / "qemu.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

    def console(self) -> str:
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_console(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait for ``pattern`` on the serial console: the match, or an AssertionError."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = regex.search(self.console())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(1.0)
        tail = "\n".join(self.console().splitlines()[-60:])
        raise AssertionError(f"no {pattern!r} on the console after {timeout:.0f}s:\n{tail}")

    def power_down(self, timeout: float = 180.0) -> bool:
        """The power button (systemd shuts down cleanly); True if the VM stopped by itself."""
        if self.process.poll() is None:
            with socket.socket(socket.AF_UNIX) as monitor:
                monitor.connect(str(self.monitor_path))
                monitor.sendall(b"system_powerdown\n")
                time.sleep(0.5)
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def have_tools() -> list[str]:
    """Host tools the image test needs that are missing."""
    tools = ("qemu-system-aarch64", "xz", "sfdisk", "mdir", "mcopy", "mtype", "debugfs", "openssl")
    return [tool for tool in tools if shutil.which(tool) is None]
