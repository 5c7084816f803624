"""make flash-micropython: the esptool commands for an ESP32 board, the UF2
steps for an RP2040, and one clear line for every mistake."""
import pytest

from tools import deploy, flash

ROOT = deploy.REPO_ROOT


def test_esp32_erases_then_writes_at_0x1000(tmp_path):
    img = tmp_path / "ESP32_GENERIC-20250415-v1.25.0.bin"
    img.write_bytes(b"\xe9" + bytes(100))
    kind, steps = flash.plan(ROOT, "esp32_bench", "/dev/ttyUSB0", str(img))
    assert kind == "esptool"
    assert steps == [
        ["esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0", "erase-flash"],
        ["esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800",
         "write-flash", "-z", "0x1000", str(img)]]


def test_the_pinned_esptool_has_our_commands_and_options():
    """The commands and options we pass exist in the esptool we install."""
    import subprocess
    import sys
    top = subprocess.run([sys.executable, "-m", "esptool", "--help"], capture_output=True, text=True).stdout
    assert "erase-flash" in top and "write-flash" in top and "--chip" in top and "--baud" in top
    sub = subprocess.run([sys.executable, "-m", "esptool", "write-flash", "--help"], capture_output=True, text=True).stdout
    assert "--compress" in sub and "-z" in sub


def test_rp2040_gives_uf2_steps_and_copies_to_a_drive(tmp_path, capsys):
    img = tmp_path / "RPI_PICO-v1.25.0.uf2"
    img.write_bytes(b"UF2\n" + bytes(508))
    kind, steps = flash.plan(ROOT, "rp2040_bench", None, str(img))
    assert kind == "uf2" and "BOOTSEL" in steps[0]
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    assert flash.main(["--board", "rp2040_bench", "--firmware", str(img), "--drive", str(drive)]) == 0
    assert (drive / img.name).read_bytes() == img.read_bytes()


@pytest.mark.parametrize("args,msg", [
    (["--board", "esp32_bench", "--port", "/dev/x"], "FIRMWARE=path/to/micropython image is required"),
    (["--board", "esp32_bench", "--port", "/dev/x", "--firmware", "/nope.bin"], "firmware image not found"),
    (["--board", "nosuch", "--firmware", "x"], "unknown board"),
    (["--board", "host_sim", "--firmware", "x"], "host-only"),
])
def test_mistakes_are_one_line(args, msg, capsys):
    assert flash.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flash: ") and msg in err[0]


def test_wrong_image_kind(tmp_path, capsys):
    img = tmp_path / "fw.uf2"
    img.write_bytes(b"x")
    assert flash.main(["--board", "esp32_bench", "--port", "/dev/x", "--firmware", str(img)]) == 1
    assert "ESP32 image is a .bin" in capsys.readouterr().err
