"""`make image-test`: the built SD image boots under QEMU and works, proven from outside.

One boot serves every test (module fixture), in order: the appliance service reaches READY,
the web page answers on a forwarded port, a call from the host's SIMCom emulator is answered
and hears its prompt, and after a clean power-down the boot partition shows that first boot
consumed userconf.txt and config.toml. Not collected by the default `pytest` run (testpaths).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.media import SpeechSynth
from appliance.sim.simcom import RATE, SimcomModem
from tests.audio_checks import fraction_heard, normalised_xcorr, rms_dbfs
from tests.image.vm import BUILD, Disk, VirtMachine, built_image, free_port, have_tools

BOOT_TIMEOUT = 900.0  # software emulation of every instruction, on a busy 2-core host
CALL_TIMEOUT = 180.0
PROMPT = "Welcome to the family conference line."
TEST_USER = "tester"

# The test's config.toml, put on the boot partition as a user would: first boot imports it.
# /dev/hvc0 and /dev/hvc1 are the two virtio console ports, in the order QEMU is given them.
CONFIG = """\
[appliance]
name = "Image test"
data_dir = "/var/lib/appliance"

[web]
listen = "0.0.0.0:80"

[[line]]
name = "gsm0"
driver = "simcom"
control = "/dev/hvc0"
audio = "serial:/dev/hvc1"
number = "+15551230000"
voice_url = "rules.xml"
"""

RULES = f"""\
<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>{PROMPT}</Say>
  <Dial><Conference>family</Conference></Dial>
</Response>
"""

# Test-only changes to the root file system. The virtio consoles are hvc ttys (major "hvc" in
# /proc/devices), which appliance.service's DevicePolicy=closed does not list, and udev gives
# them to group tty; a real Pi's modems are ttyUSB/ttyACM/ttyAMA/ttyS, which it does list.
DROP_IN = "[Service]\nDeviceAllow=char-hvc rw\n"
UDEV_RULE = 'SUBSYSTEM=="tty", KERNEL=="hvc[0-9]*", GROUP="dialout", MODE="0660"\n'
ROOT_FILES = {
    "/etc/systemd/system/appliance.service.d/image-test.conf": DROP_IN,
    "/etc/udev/rules.d/90-appliance-image-test.rules": UDEV_RULE,
    "/etc/appliance/rules.xml": RULES,
}

pytestmark = pytest.mark.skipif(bool(have_tools()), reason=f"missing tools: {have_tools()}")


@pytest.fixture(scope="module")
def workdir() -> Path:
    """Scratch disk, kernel, console log: kept after the run, beside the image (gitignored)."""
    path = BUILD / "image-test"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def disk(workdir: Path) -> Disk:
    disk = Disk(built_image(), workdir / "disk.img", grow_by=1 << 30)
    crypted = subprocess.run(
        ["openssl", "passwd", "-6", "correct horse"], check=True, capture_output=True, text=True
    ).stdout.strip()
    disk.put_boot_file("userconf.txt", f"{TEST_USER}:{crypted}\n", workdir)
    disk.put_boot_file("config.toml", CONFIG, workdir)
    disk.put_root_files(ROOT_FILES, workdir)
    return disk


@pytest.fixture(scope="module")
def modem():
    modem = SimcomModem(name="gsm0", number="+15551230000")
    modem.start()
    yield modem
    modem.stop()


@pytest.fixture(scope="module")
def vm(disk: Disk, modem: SimcomModem, workdir: Path):
    names = disk.boot_files()
    kernel = next(name for name in names if name.startswith("vmlinuz-"))
    initrd = next(name for name in names if name.startswith("initrd.img-"))
    # The image's own root= (by label), with QEMU's console instead of the Pi's UART.
    shipped = disk.read_boot_file("cmdline.txt").decode()
    root = next(arg for arg in shipped.split() if arg.startswith("root="))
    assert root == "root=LABEL=appliance-root", shipped
    cmdline = (
        f"console=ttyAMA0 {root} rw rootwait net.ifnames=0 systemd.getty_auto=0 "
        "systemd.journald.forward_to_console=1"
    )
    machine = VirtMachine(
        disk,
        kernel=disk.copy_boot_file(kernel, workdir / kernel),
        initrd=disk.copy_boot_file(initrd, workdir / initrd),
        cmdline=cmdline,
        web_port=free_port(),
        consoles={"modem-at": modem.control_path, "modem-audio": modem.audio_path},
        workdir=workdir,
    )
    yield machine
    machine.kill()
    print(f"\nconsole log: {machine.console_path}")


def test_boots_to_ready_and_the_appliance_service_is_active(vm: VirtMachine):
    # Type=notify: systemd reports "Started" only once the daemon sent READY=1
    # (lines, audio tick and web page up).
    vm.wait_console(r"Started appliance\.service", BOOT_TIMEOUT)
    ready = time.monotonic() - vm.started
    print(f"\nboot to READY under QEMU (TCG): {ready:.0f} s")
    vm.wait_console(r"appliance\.supervisor: ready: 1 line\(s\)", 60)
    console = vm.console()
    assert "Failed to start appliance.service" not in console


def test_first_boot_grew_the_root_made_host_keys_and_applied_the_boot_files(vm: VirtMachine):
    vm.wait_console(r"root partition /dev/vda2 grown", 60)
    vm.wait_console(r"SSH host keys made", 300)
    vm.wait_console(rf"user {TEST_USER} created from userconf\.txt", 60)
    vm.wait_console(r"config\.toml imported from the boot partition", 60)


def test_systemd_arms_the_hardware_watchdog(vm: VirtMachine):
    # /etc/systemd/system.conf.d/appliance-watchdog.conf: RuntimeWatchdogSec=10s.
    match = vm.wait_console(r"Watchdog running with a (hardware )?timeout of ([0-9]+s)", 60)
    assert match.group(2) == "10s", match.group(0)


def test_web_page_answers_on_the_forwarded_port_with_first_run_setup(vm: VirtMachine):
    url = f"http://127.0.0.1:{vm.web_port}/setup"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                status, body = response.status, response.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    assert status == 200
    assert "<form" in body and "password" in body.lower()


def test_call_from_the_host_emulator_is_answered_and_hears_its_prompt(
    vm: VirtMachine, modem: SimcomModem, workdir: Path
):
    reference = SpeechSynth(workdir / "speech").synthesize(PROMPT, "", "en-US", RATE)
    loud = np.flatnonzero(np.abs(reference) > 100)
    reference = reference[loud[0] : loud[-1] + 1]

    modem.ring("+15557654321")
    assert modem.wait_state("active", CALL_TIMEOUT), (
        f"the appliance did not answer; AT commands seen: {modem.commands[-20:]}"
    )
    assert modem.wait_audio(60), "no audio stream (AT+CPCMREG=1) after answering"
    deadline = time.monotonic() + CALL_TIMEOUT
    while modem.sample_clock < len(reference) + 6 * RATE and time.monotonic() < deadline:
        time.sleep(0.5)
    heard = modem.heard()
    (workdir / "heard.raw").write_bytes(heard.astype("<i2").tobytes())
    peak, _lag = normalised_xcorr(heard, reference)
    share = fraction_heard(heard, reference, RATE)
    print(
        f"\nprompt heard: ncc {peak:.2f}, {share:.0%} of its 100 ms pieces; "
        f"level {rms_dbfs(heard):.1f} dBFS; modem stats {modem.stats()}"
    )
    assert share > 0.6 or peak > 0.6, (
        f"the caller did not hear the prompt (ncc {peak:.2f}, pieces {share:.0%}); "
        f"modem stats {modem.stats()}"
    )
    modem.hangup()


def test_clean_power_down_and_first_boot_consumed_the_boot_files(vm: VirtMachine, disk: Disk):
    assert vm.power_down(), "the guest did not power off on the power button"
    files = disk.boot_files()
    assert "userconf.txt" not in files, files
    assert "config.toml" not in files, files
    assert "config-errors.txt" not in files, files
