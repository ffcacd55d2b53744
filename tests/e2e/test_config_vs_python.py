"""Issue 12: what Portico reads from YAML and JSON config files, against what
PyYAML and Python's `json` read on the same files.

Portico's readers are hand-written (uWSGI's flat subsets; docs/design-notes.md
says why), so this pins them to the reference parsers: every file below is
read by `portico FILE --show-config` and by Python, and the (key, value) lists
must be equal. Keys are ones Portico does not know, so they come back
verbatim as `set-placeholder = KEY=VALUE` (no switch turned into
`true`/`false`). PyYAML reads with its BaseLoader (every scalar a string,
as uWSGI reads them; mappings kept as ordered pairs so repeated keys stay);
`json` keeps numbers as written, and `true`/`false`/`null` become
`true`/`false`/`false` as uWSGI's JSON reader makes them. A list is its key
repeated once per item.

What the subsets do not read (nested mappings, block scalars, multi-line
plain scalars, anchors) is refused with the file and line; those files are
at the end, checked to fail in Portico.
"""

import json
import re

import pytest
import yaml

from test_config import portico

# --- what Python reads -----------------------------------------------------------------


class PairsLoader(yaml.BaseLoader):
    """PyYAML's BaseLoader with mappings as ordered (key, value) pairs."""


PairsLoader.add_constructor(
    "tag:yaml.org,2002:map", lambda loader, node: loader.construct_pairs(node, deep=True)
)


def flatten(sections, section="uwsgi"):
    """(key, value) entries of every `section` block, lists repeated."""
    out = []
    for name, body in sections:
        if name != section or body in ("", None):
            continue
        for key, value in body:
            if isinstance(value, list):
                out.extend((key, item) for item in value)
            else:
                out.append((key, value))
    return out


def python_yaml(text):
    return flatten(yaml.load(text, Loader=PairsLoader))


def json_scalar(value):
    if value is True:
        return "true"
    if value is False or value is None:
        return "false"
    return value


def python_json(text):
    pairs = json.loads(
        text,
        object_pairs_hook=lambda pairs: pairs,
        parse_int=str,
        parse_float=str,
        parse_constant=str,
    )
    converted = [
        (name, [(k, [json_scalar(i) for i in v] if isinstance(v, list) else json_scalar(v))
                for k, v in body])
        for name, body in pairs
    ]
    return flatten(converted)


# --- what Portico reads ----------------------------------------------------------------


def unescape(value):
    """--show-config's escapes read back: `%\\xHH` and `%%`."""
    return re.sub(
        r"%\\x([0-9a-fA-F]{2})|%%", lambda m: chr(int(m.group(1), 16)) if m.group(1) else "%", value
    )


def portico_reads(path):
    proc = portico(path, "--show-config")
    assert proc.returncode == 0, proc.stderr
    out = []
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(" = ")
        if key == "set-placeholder" and sep:
            name, _, value = unescape(value).partition("=")
            out.append((name, value))
    return out


# --- the files -------------------------------------------------------------------------

YAML_FILES = {
    "plain": "uwsgi:\n  k-a: 1\n  k-b: hello world\n  k-c: http://host:80/a?b=c\n",
    "comments": (
        "# top comment\nuwsgi:\n  k-a: value # a comment\n  # a whole-line comment\n"
        "  k-b: a#b\n  k-c: 'x # y'\n"
    ),
    "quotes": (
        "uwsgi:\n  k-a: \"double # not a comment\"\n  k-b: 'single ''quoted'''\n"
        "  k-c: \"esc \\\" and \\\\ end\"\n  k-d: \"\"\n  k-e: ''\n"
    ),
    "double-quoted escapes": (
        "uwsgi:\n  k-a: \"tab\\there\"\n  k-b: \"x\\ny\"\n  k-c: \"\\x41\\u00e9\\U0001F600\"\n"
        "  k-d: \"\\/ \\0 \\a \\e \\r\"\n"
    ),
    "lists": (
        "uwsgi:\n  k-a:\n    - one\n    - 'two'\n  k-b: [x, y, z]\n  k-c: [\"a,b\", 'c, d', e]\n"
        "  k-d: []\n"
    ),
    "bare keys and repeats": "uwsgi:\n  k-a:\n  k-b: 1\n  k-b: 2\n  k-c:\n",
    "sections": "other:\n  k-x: 1\nuwsgi:\n  k-y: 2\nmore:\n  k-z: 3\nuwsgi:\n  k-w: 4\n",
    "document markers": "---\nuwsgi:\n  k-a: 1\n...\n",
    "yaml words stay strings": "uwsgi:\n  k-a: yes\n  k-b: ~\n  k-c: null\n  k-d: 0x10\n  k-e: 1e3\n",
    "indentation": "uwsgi:\n    k-a: four spaces\n    k-b:   padded value  \n",
    "spaces inside": "uwsgi:\n  k-a: a   b\n  k-b: 'keep  '\n",
    "unicode": "uwsgi:\n  k-a: café ☕\n  k-b: \"naïve\"\n",
    "bom": "\ufeffuwsgi:\n  k-a: 1\n",
}

JSON_FILES = {
    "plain": '{"uwsgi": {"k-a": "1", "k-b": "hello world"}}',
    "numbers as written": '{"uwsgi": {"k-a": 1, "k-b": 1.50, "k-c": -0, "k-d": 1e3, "k-e": 2E-2}}',
    "literals": '{"uwsgi": {"k-a": true, "k-b": false, "k-c": null}}',
    "escapes": (
        '{"uwsgi": {"k-a": "tab\\there", "k-b": "q\\"b\\\\s\\/", "k-c": "\\u00e9\\ud83d\\ude00",'
        ' "k-d": "nl\\nx"}}'
    ),
    "arrays": '{"uwsgi": {"k-a": ["x", 2, true, null], "k-b": []}}',
    "repeated keys in order": '{"uwsgi": {"k-b": "1", "k-a": "2", "k-b": "3"}}',
    "sections": '{"other": {"k-x": "1"}, "uwsgi": {"k-y": "2"}, "uwsgi": {"k-z": "3"}}',
    "whitespace": '\n\t {\r\n "uwsgi" : { "k-a" : "v" } }\n',
    "unicode": '{"uwsgi": {"k-a": "café ☕"}}',
}

YAML_REFUSED = {
    "nested mapping": ("uwsgi:\n  k-a:\n    inner: 1\n", 3),
    "block scalar": ("uwsgi:\n  k-a: |\n    text\n", 2),
    "multi-line plain scalar": ("uwsgi:\n  k-a: one\n    two\n", 3),
}


@pytest.mark.parametrize("name", sorted(YAML_FILES))
def test_yaml_reads_as_pyyaml_reads(tmp_path, name):
    path = tmp_path / "app.yaml"
    path.write_text(YAML_FILES[name])
    expected = python_yaml(YAML_FILES[name])
    assert expected, "the case must give PyYAML something to read"
    assert portico_reads(path) == expected


@pytest.mark.parametrize("name", sorted(JSON_FILES))
def test_json_reads_as_python_json_reads(tmp_path, name):
    path = tmp_path / "app.json"
    path.write_text(JSON_FILES[name])
    expected = python_json(JSON_FILES[name])
    assert expected, "the case must give json something to read"
    assert portico_reads(path) == expected


@pytest.mark.parametrize("name", sorted(YAML_REFUSED))
def test_yaml_outside_the_subset_is_refused_with_its_line(tmp_path, name):
    text, line = YAML_REFUSED[name]
    path = tmp_path / "app.yaml"
    path.write_text(text)
    yaml.load(text, Loader=PairsLoader)  # valid YAML: the refusal is the subset's
    proc = portico(path, "--show-config")
    assert proc.returncode == 1, proc.stdout
    assert f"{path}:{line}:" in proc.stderr, proc.stderr
