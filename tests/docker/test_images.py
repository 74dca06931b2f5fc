"""The image choice of the Docker flows (tests/docker/images.py): stand-ins by default without a
pull, shipped images on STANDINS=0, and a pull that fails says what to do."""

from __future__ import annotations

import pytest

from scripts.native_stack.paths import REPO
from tests.docker.images import choose, pull, shipped_images, wants_shipped


def no_pull(image: str) -> None:
    raise AssertionError(f"the default path pulled {image}")


def test_shipped_images_are_the_pinned_ones() -> None:
    pins = (REPO / "docs/PINS.md").read_text()
    for key, image in shipped_images().items():
        assert f"`{image}`" in pins, f"{key}={image} has no evidence in docs/PINS.md"


def test_default_never_pulls_and_runs_standins_when_nothing_is_local() -> None:
    shipped = shipped_images()
    standins = {key: f"stand-in-for-{key.lower()}" for key in shipped}
    choice = choose(standins, shipped, want_shipped=False, present=lambda _: False, fetch=no_pull)
    assert choice.images == standins and choice.shipped == ()


def test_a_shipped_image_on_the_engine_is_used_as_it_is() -> None:
    shipped = shipped_images()
    local = shipped["CLICKHOUSE_IMAGE"]
    choice = choose(
        {key: "stand-in" for key in shipped},
        shipped,
        want_shipped=False,
        present=lambda image: image == local,
        fetch=no_pull,
    )
    assert choice.shipped == ("CLICKHOUSE_IMAGE",) and choice.images["CLICKHOUSE_IMAGE"] == local
    assert "CLICKHOUSE_IMAGE=" + local + " (shipped)" in choice.describe()


def test_standins_0_pulls_what_is_missing() -> None:
    shipped = shipped_images()
    pulled: list[str] = []
    choice = choose(
        {key: "stand-in" for key in shipped},
        shipped,
        want_shipped=True,
        present=lambda image: image == shipped["LITELLM_BASE_IMAGE"],
        fetch=pulled.append,
    )
    assert choice.images == shipped
    assert sorted(pulled) == sorted(set(shipped.values()) - {shipped["LITELLM_BASE_IMAGE"]})


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("0", True), ("off", True), ("false", True), ("no", True), ("1", False), (None, False)],
)
def test_standins_switch(value: str | None, wanted: bool) -> None:
    assert wants_shipped({} if value is None else {"STANDINS": value}) is wanted


def test_a_failed_pull_says_what_to_do(engine: None) -> None:
    """A real pull from a registry address where nothing listens (loopback: no network)."""
    with pytest.raises(RuntimeError) as failed:
        pull("127.0.0.1:9/llm-gateway-test/nothing:1")
    message = str(failed.value)
    assert "STANDINS=0" in message and "registry" in message
    assert "without STANDINS=0" in message
