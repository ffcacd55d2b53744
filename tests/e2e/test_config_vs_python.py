"""Issue 12: what Portico reads from YAML and JSON config files, against what
PyYAML and Python's `json` read on the same files.

Portico's readers are hand-written (uWSGI's flat subsets; docs/design-notes.md
says why), so this pins them to the reference parsers: every file below is
read by `portico FILE --show-config` and by Python, reduced to uWSGI's flat
(option, value) list the same way, and the lists must be equal. Most cases
use keys Portico does not know, so they come back verbatim as
`set-placeholder = KEY=VALUE` (no switch turned into `true`/`false`); the
option-style cases (the `configs/same.*` seeds and the `*.yaml`/`*.json`
cases) use real uWSGI options, printed as `option = value`. PyYAML reads
with its BaseLoader (every scalar a string, as uWSGI reads them; mappings
kept as ordered pairs so repeated keys stay); `json` keeps numbers as
written, and `true`/`false`/`null` become `true`/`false`/`false` as uWSGI's
JSON reader makes them. A list is its key repeated once per item.

What the subsets do not read (nested mappings, block scalars, multi-line
plain scalars, anchors) is refused with the file and line; those files are
at the end, checked to fail in Portico.
"""

import json
import re

import pytest
import yaml

from test_config import CONFIGS, portico, show_config

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
    """The (option, value) list `--show-config` prints for `path`, escapes
    read back; `set-placeholder = KEY=VALUE` (a key Portico does not know)
    read as (KEY, VALUE)."""
    out = []
    for line in show_config(path).splitlines():
        if line.startswith((";", "[")) or not line.strip():
            continue
        key, _, value = line.partition(" = ")
        value = unescape(value)
        if key == "set-placeholder":
            key, _, value = value.partition("=")
        out.append((key, value))
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

# Real uWSGI options, printed by --show-config as `option = value`.

YAML_OPTION_FILES = {
    "same.yaml": (CONFIGS / "same.yaml").read_text(),
    "plain.yaml": "# a comment\nuwsgi:\n  env: GREETING=hello world\n  processes: 2\n"
                  "  socket:\n    - 127.0.0.1:3031\n    - /tmp/portico-readers.sock\n"
                  "  master: true\nother:\n  processes: 9\n",
    "quoted.yaml": "uwsgi:\n  env: \"GREETING=a: b\"\n  pythonpath: '/srv/app'\n"
                   "  harakiri: 30\n",
}

JSON_OPTION_FILES = {
    "same.json": (CONFIGS / "same.json").read_text(),
    "duplicates.json": '{"other": {"processes": 9},\n "uwsgi": {"env": "A=1", "processes": 2,\n'
                       '  "env": "B=2", "master": true, "vacuum": null, "lazy-apps": false,\n'
                       '  "socket": ["127.0.0.1:3031", "/tmp/portico-readers.sock"]}}',
    "numbers.json": '{"uwsgi": {"pythonpath": [1.50, -0, 1E+3, 12345678901234567890123],\n'
                    '  "harakiri": 30}}',
    "escapes.json": '{"uwsgi": {"env": "GREETING=caf\\u00e9 \\"quoted\\" \\\\ end",\n'
                    '  "pythonpath": "/srv/\\u2603"}}',
}

YAML_CASES = {**YAML_FILES, **YAML_OPTION_FILES}
JSON_CASES = {**JSON_FILES, **JSON_OPTION_FILES}

YAML_REFUSED = {
    "nested mapping": ("uwsgi:\n  k-a:\n    inner: 1\n", 3),
    "block scalar": ("uwsgi:\n  k-a: |\n    text\n", 2),
    "multi-line plain scalar": ("uwsgi:\n  k-a: one\n    two\n", 3),
}


def reads_as_python(tmp_path, file_name, text, python):
    """Portico and `python` read `text` (as a file named `file_name`) alike."""
    path = tmp_path / file_name
    path.write_text(text)
    expected = python(text)
    assert expected, "the case must give the Python reader something to read"
    assert portico_reads(path) == expected


@pytest.mark.parametrize("name", sorted(YAML_CASES))
def test_yaml_reads_as_pyyaml_reads(tmp_path, name):
    reads_as_python(tmp_path, "app.yaml", YAML_CASES[name], python_yaml)


@pytest.mark.parametrize("name", sorted(JSON_CASES))
def test_json_reads_as_python_json_reads(tmp_path, name):
    reads_as_python(tmp_path, "app.json", JSON_CASES[name], python_json)


@pytest.mark.parametrize("name", sorted(YAML_REFUSED))
def test_yaml_outside_the_subset_is_refused_with_its_line(tmp_path, name):
    text, line = YAML_REFUSED[name]
    path = tmp_path / "app.yaml"
    path.write_text(text)
    yaml.load(text, Loader=PairsLoader)  # valid YAML: the refusal is the subset's
    proc = portico(path, "--show-config")
    assert proc.returncode == 1, proc.stdout
    assert f"{path}:{line}:" in proc.stderr, proc.stderr
