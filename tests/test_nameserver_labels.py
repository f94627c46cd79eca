"""Mesos-DNS's label rules: what a task or framework name becomes in DNS."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from nameserver.labels import domain_fragment, rfc952, rfc1123

LABEL_1123 = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$")
LABEL_952 = re.compile(r"^([a-z]([-a-z0-9]{0,22}[a-z0-9])?)?$")


def test_capitals_are_lowered_separators_hyphenated_and_the_rest_dropped():
    assert rfc1123("Web Server") == "webserver"
    assert rfc1123("my_app.v2") == "my-app-v2"
    assert rfc1123("--échelle--") == "chelle"
    assert rfc1123("1st") == "1st"  # RFC 1123 allows a leading digit


def test_rfc952_starts_with_a_letter_and_keeps_24_characters():
    assert rfc952("1st-app") == "st-app"
    assert rfc952("a" * 30) == "a" * 24
    assert rfc1123("a" * 70) == "a" * 63


def test_a_cut_inside_hyphens_takes_the_letters_after_them():
    assert rfc952("abcdefghijklmnopqrstuvw--xyz") == "abcdefghijklmnopqrstuvwx"
    assert rfc952("abcdefghijklmnopqrstuv---xyz") == "abcdefghijklmnopqrstuvxy"


def test_a_name_with_nothing_usable_is_empty():
    assert rfc1123("***") == ""
    assert rfc952("123") == ""


def test_framework_names_keep_their_dots_as_label_boundaries():
    assert domain_fragment("My.Frame_work", rfc1123) == "my.frame-work"
    assert domain_fragment("a..b.", rfc1123) == "a.b"


@given(st.text())
def test_every_name_becomes_a_valid_label(name):
    assert LABEL_1123.match(rfc1123(name))
    assert LABEL_952.match(rfc952(name))
