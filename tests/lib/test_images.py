"""Intake of source images: every bad input is made here, in memory, from a few bytes."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, ImageFile
from support import kodak_path

from perceptlab.lib.images import (
    ImageRejected,
    Limits,
    LoadedImage,
    decode_png,
    encode_png,
    load_image,
    pixels_sha256,
    sha256_hex,
)

LIMITS = Limits(max_pixels=50_000_000, max_side=16384, min_side=16, max_bytes=200 * 2**20)


@pytest.fixture(autouse=True)
def _isolated_media_and_inline_tasks() -> Iterator[None]:
    """Overrides the project-wide autouse fixture: this module needs neither Django nor a DB."""
    yield


def save(image: Image.Image, format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def load(data: bytes, limits: Limits = LIMITS) -> LoadedImage:
    return load_image(data, name="test.img", limits=limits)


def rejection(data: bytes, limits: Limits = LIMITS) -> str:
    with pytest.raises(ImageRejected) as caught:
        load(data, limits)
    assert caught.value.name == "test.img"
    assert str(caught.value) == f"test.img: {caught.value.reason}"
    return caught.value.reason


def noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 16x16 PNG whose IHDR then claims another size, with its CRC recomputed."""
    data = bytearray(save(Image.new("RGB", (16, 16)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def png_rgb48(samples: np.ndarray) -> bytes:
    """A 16-bit-per-sample RGB PNG written by hand: Pillow cannot write one."""
    height, width, _ = samples.shape
    rows = samples.astype(">u2").reshape(height, width * 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on each row
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + chunks + png_chunk(b"IEND", b"")


def png_chunk_types(data: bytes) -> list[bytes]:
    kinds, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kinds.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


# --- refused before decoding ------------------------------------------------------------------


def test_it_rejects_text_bytes_as_not_an_image() -> None:
    reason = rejection(b"kodim01,768,512\nkodim02,768,512\n")
    assert reason == "not an image (Pillow cannot identify it)"


def test_it_rejects_a_zero_byte_file() -> None:
    assert rejection(b"") == "is empty (0 bytes)"


def test_it_rejects_a_file_over_the_byte_limit_before_opening_it() -> None:
    small = Limits(max_pixels=50_000_000, max_side=16384, min_side=16, max_bytes=1000)
    reason = rejection(b"\x00" * 1001, small)
    assert reason == "is 1,001 bytes, over the limit of 1,000 bytes"


def test_it_rejects_a_decompression_bomb_from_its_header_quickly() -> None:
    bomb = png_claiming_size(50_000, 50_000)
    started = time.perf_counter()
    reason = rejection(bomb)
    assert time.perf_counter() - started < 1.0
    assert reason == "has more than 50,000,000 pixels, the limit; refused before decoding"


def test_it_applies_the_pixel_limit_it_is_given_not_pillows_default() -> None:
    # 60 M pixels: under Pillow's default bomb limit (89 M), over ours.
    assert "more than 50,000,000 pixels" in rejection(png_claiming_size(10_000, 6_000))
    tiny = Limits(max_pixels=1000, max_side=100, min_side=16, max_bytes=2**20)
    assert load(save(Image.new("RGB", (40, 25)), "PNG"), tiny).notes == ()
    assert "more than 1,000 pixels" in rejection(save(Image.new("RGB", (40, 26)), "PNG"), tiny)


def test_it_rejects_a_gif_whose_frame_grows_the_canvas_before_allocating_it() -> None:
    data = bytearray(save(Image.new("RGB", (32, 32), "red"), "GIF", disposal=2))
    descriptor = data.index(b"," + struct.pack("<HHHH", 0, 0, 32, 32))
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", 60_000, 60_000)
    started = time.perf_counter()
    assert "more than 50,000,000 pixels" in rejection(bytes(data))
    assert time.perf_counter() - started < 1.0


def test_it_rejects_an_image_with_a_side_over_the_maximum() -> None:
    reason = rejection(png_claiming_size(20_000, 100))
    assert reason == "is 20000x100 pixels; no side may be longer than 16384"


def test_it_rejects_an_image_with_a_side_under_the_minimum() -> None:
    reason = rejection(save(Image.new("RGB", (1, 1)), "PNG"))
    assert reason == "is 1x1 pixels; each side must be at least 16"


def test_it_rejects_an_animated_gif() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert "has 2 frames (animated or multi-page)" in rejection(data)


def test_it_rejects_an_animated_png() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    data = save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert "has 2 frames (animated or multi-page)" in rejection(data)


# --- refused while decoding -------------------------------------------------------------------


def test_it_rejects_a_truncated_png() -> None:
    data = save(Image.fromarray(noise(256, 256)), "PNG")
    assert rejection(data[: len(data) // 2]).startswith("truncated or corrupt")


def test_it_rejects_a_truncated_jpeg() -> None:
    data = save(Image.fromarray(noise(256, 256)), "JPEG", quality=90)
    assert rejection(data[: len(data) // 2]).startswith("truncated or corrupt")


def test_it_rejects_a_truncated_file_even_when_pillow_is_set_to_load_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = save(Image.fromarray(noise(256, 256)), "JPEG")
    assert rejection(data[: len(data) // 2]).startswith("truncated or corrupt")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_it_leaves_pillows_global_switches_as_it_found_them() -> None:
    before = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    load(save(Image.fromarray(noise(32, 32)), "PNG"))
    rejection(png_claiming_size(50_000, 50_000))
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_it_rejects_rgba_with_real_transparency_saying_how_much() -> None:
    rgba = np.dstack([noise(32, 32), np.full((32, 32), 255, np.uint8)])
    rgba[:16, :16, 3] = 0  # a quarter of the pixels
    reason = rejection(save(Image.fromarray(rgba), "PNG"))
    assert (
        reason == "has transparency (25 % of pixels not opaque); flatten it onto a background first"
    )


def test_it_rejects_a_palette_image_with_a_transparent_entry_in_use() -> None:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.paste(1, (0, 0, 32, 8))
    assert "has transparency (25 %" in rejection(save(image, "PNG", transparency=1))


def test_it_rejects_a_pixel_mode_it_does_not_know_naming_it() -> None:
    reason = rejection(save(Image.new("LAB", (32, 32)), "TIFF"))
    assert reason.startswith("unsupported pixel mode 'LAB'; supported: 1, L, LA")


def test_it_rejects_float_samples_outside_zero_to_one() -> None:
    samples = np.linspace(0.0, 2.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    reason = rejection(save(Image.fromarray(samples), "TIFF"))
    assert "has floating-point samples in 0.0..2.0, outside 0.0..1.0" in reason


# --- converted, with a note -------------------------------------------------------------------


def test_it_converts_a_cmyk_jpeg_without_colour_management() -> None:
    loaded = load(save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95))
    assert (loaded.source_format, loaded.source_mode) == ("JPEG", "CMYK")
    assert loaded.notes == ("converted CMYK to RGB without colour management",)
    red = loaded.pixels.reshape(-1, 3).mean(axis=0)
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_it_scales_a_16_bit_png_to_8_bits_with_rounding() -> None:
    row = np.array([0, 65535, 32896, 32767, 971, 128, 129] + [0] * 9, dtype=np.uint16)
    data = save(Image.fromarray(np.tile(row, (16, 1))), "PNG")
    loaded = load(data)
    assert loaded.source_mode == "I;16"
    assert loaded.notes == ("converted 16-bit to 8-bit (rounded)", "converted greyscale to RGB")
    # round(v / 257): 32767 / 257 = 127.498, 971 / 257 = 3.78, 129 / 257 = 0.502
    assert loaded.pixels[0, :7, 0].tolist() == [0, 255, 128, 127, 4, 0, 1]
    assert np.array_equal(loaded.pixels[..., 0], loaded.pixels[..., 2])


def test_it_scales_a_16_bit_pgm_that_pillow_opens_as_mode_i() -> None:
    samples = np.tile(np.array([0, 65535, 32896, 971], dtype=">u2"), (16, 4))
    data = b"P5\n16 16\n65535\n" + samples.tobytes()
    loaded = load(data)
    assert loaded.source_mode == "I"
    assert loaded.notes[0] == "converted 32-bit integer samples (0..65535) to 8-bit (rounded)"
    assert loaded.pixels[0, :4, 0].tolist() == [0, 255, 128, 4]


def test_it_says_pillow_keeps_the_high_byte_of_a_16_bit_rgb_png() -> None:
    loaded = load(png_rgb48(np.full((16, 16, 3), 511, dtype=np.uint16)))
    assert loaded.source_mode == "RGB"
    assert loaded.notes == ("converted 16-bit to 8-bit (Pillow keeps the high byte; not rounded)",)
    assert set(loaded.pixels.ravel().tolist()) == {1}  # 511 = 0x01FF; rounding would give 2


def test_it_converts_floating_point_samples_in_zero_to_one() -> None:
    samples = np.tile(np.array([0.0, 1.0, 0.5, 0.25], dtype=np.float32), (16, 4))
    loaded = load(save(Image.fromarray(samples), "TIFF"))
    assert loaded.notes[0] == "converted floating-point samples (0..1) to 8-bit (rounded)"
    assert loaded.pixels[0, :4, 0].tolist() == [0, 255, 128, 64]


def test_it_drops_a_fully_opaque_alpha_channel_with_a_note() -> None:
    rgb = noise(32, 32)
    rgba = np.dstack([rgb, np.full((32, 32), 255, np.uint8)])
    loaded = load(save(Image.fromarray(rgba), "PNG"))
    assert (loaded.source_mode, loaded.notes) == ("RGBA", ("dropped a fully opaque alpha channel",))
    assert np.array_equal(loaded.pixels, rgb)


def test_it_applies_exif_orientation_6_by_rotating_90_degrees_clockwise() -> None:
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:16, :16] = 255  # a white block at the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load(save(Image.fromarray(stored), "JPEG", quality=95, exif=exif))
    assert loaded.notes == ("applied EXIF orientation 6 (rotated 90°)",)
    assert (loaded.width, loaded.height) == (32, 64)
    assert loaded.pixels[:16, 16:].min() > 200 and loaded.pixels[:16, :16].max() < 50


def test_it_converts_greyscale_to_rgb_with_a_note() -> None:
    grey = noise(32, 32, channels=1)
    loaded = load(save(Image.fromarray(grey), "PNG"))
    assert (loaded.source_mode, loaded.notes) == ("L", ("converted greyscale to RGB",))
    assert all(np.array_equal(loaded.pixels[..., c], grey) for c in range(3))


def test_it_converts_a_palette_image_to_rgb_with_a_note() -> None:
    image = Image.fromarray(noise(32, 32)).quantize(colors=16)
    loaded = load(save(image, "PNG"))
    assert (loaded.source_mode, loaded.notes) == ("P", ("converted palette to RGB",))
    assert np.array_equal(loaded.pixels, np.asarray(image.convert("RGB")))


def test_it_accepts_a_palette_whose_transparent_entry_no_pixel_uses() -> None:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    loaded = load(save(image, "PNG", transparency=1))
    assert loaded.notes == ("converted palette to RGB", "dropped a fully opaque alpha channel")


def test_it_names_an_embedded_icc_profile_it_ignored() -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    loaded = load(save(Image.fromarray(noise(32, 32)), "PNG", icc_profile=profile))
    assert len(loaded.notes) == 1
    assert loaded.notes[0].startswith("ignored the embedded ICC profile (")


def test_it_uses_the_first_picture_of_an_mpo_file_from_a_phone_camera() -> None:
    photo, preview = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue")
    loaded = load(save(photo, "MPO", save_all=True, append_images=[preview], quality=95))
    assert loaded.notes == ("used the first of the 2 pictures in the MPO file",)
    assert loaded.pixels[..., 0].min() > 240 and loaded.pixels[..., 2].max() < 15


# --- a real photo, PNG storage and hashes -----------------------------------------------------


@pytest.fixture(scope="module")
def kodim01_bytes() -> bytes:
    return kodak_path("kodim01").read_bytes()


def test_it_loads_a_kodak_photo_unchanged_and_without_notes(kodim01_bytes: bytes) -> None:
    loaded = load(kodim01_bytes)
    assert (loaded.width, loaded.height, loaded.notes) == (768, 512, ())
    assert (loaded.source_format, loaded.source_mode) == ("PNG", "RGB")
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.flags.c_contiguous
    with Image.open(io.BytesIO(kodim01_bytes)) as reference:
        assert np.array_equal(loaded.pixels, np.asarray(reference))


def test_its_png_round_trip_is_bit_exact(kodim01_bytes: bytes) -> None:
    pixels = load(kodim01_bytes).pixels
    assert np.array_equal(decode_png(encode_png(pixels)), pixels)


def test_its_png_encoding_is_deterministic_and_carries_no_metadata(kodim01_bytes: bytes) -> None:
    pixels = load(kodim01_bytes).pixels
    data = encode_png(pixels)
    assert encode_png(pixels.copy()) == data
    kinds = png_chunk_types(data)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}


def test_pixel_hashes_match_across_png_compression_levels(kodim01_bytes: bytes) -> None:
    image = Image.fromarray(load(kodim01_bytes).pixels)
    fast, small = save(image, "PNG", compress_level=0), save(image, "PNG", compress_level=9)
    assert sha256_hex(fast) != sha256_hex(small)
    assert pixels_sha256(load(fast).pixels) == pixels_sha256(load(small).pixels)


def test_pixel_hashes_tell_apart_the_same_bytes_in_another_shape() -> None:
    pixels = noise(16, 32)
    assert pixels_sha256(pixels) != pixels_sha256(pixels.reshape(32, 16, 3))


def test_sha256_hex_matches_the_published_digest_of_the_empty_string() -> None:
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_hex(b"") == expected


def test_encode_png_refuses_pixels_that_are_not_rgb_uint8() -> None:
    with pytest.raises(ValueError, match=r"expected \(H, W, 3\) uint8 pixels, got \(4, 4\)"):
        encode_png(np.zeros((4, 4), np.uint8))
