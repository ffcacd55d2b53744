"""The YAML and JSON readers compared with Python's: the same files read by
Portico (`--show-config`) and by PyYAML / the `json` module, reduced to
uWSGI's flat (option, value) list the same way: members in order with
duplicates kept, an array as the key repeated, numbers as written, `true`
as true and `false`/`null` as false.
"""

import json

import pytest
import yaml

from test_config import CONFIGS, settings, show_config, write

SECTION = "uwsgi"


def json_pairs(text):
    """uWSGI's reading of a JSON file, through Python's json module."""
    doc = json.loads(text, object_pairs_hook=list, parse_float=str, parse_int=str,
                     parse_constant=str)
    pairs = []
    for name, section in doc:
        if name != SECTION:
            continue
        for key, value in section:
            for item in value if isinstance(value, list) else [value]:
                if item is True:
                    item = "true"
                elif item is False or item is None:
                    item = "false"
                pairs.append((key, item))
    return pairs


def yaml_pairs(text):
    """uWSGI's reading of a YAML file, through PyYAML's node tree (all
    scalars as strings, duplicates kept)."""
    root = yaml.compose(text, Loader=yaml.BaseLoader)
    pairs = []
    for name, section in root.value:
        if name.value != SECTION:
            continue
        for key, value in section.value:
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for item in items:
                pairs.append((key.value, item.value or "true"))
    return pairs


JSON_DOCS = {
    "duplicates.json": '{"other": {"processes": 9},\n "uwsgi": {"env": "A=1", "processes": 2,\n'
                       '  "env": "B=2", "master": true, "vacuum": null, "lazy-apps": false,\n'
                       '  "socket": ["127.0.0.1:3031", "/tmp/portico-readers.sock"]}}',
    "numbers.json": '{"uwsgi": {"pythonpath": [1.50, -0, 1E+3, 12345678901234567890123],\n'
                    '  "harakiri": 30}}',
    "escapes.json": '{"uwsgi": {"env": "GREETING=caf\\u00e9 \\"quoted\\" \\\\ end",\n'
                    '  "pythonpath": "/srv/\\u2603"}}',
}

YAML_DOCS = {
    "plain.yaml": "# a comment\nuwsgi:\n  env: GREETING=hello world\n  processes: 2\n"
                  "  socket:\n    - 127.0.0.1:3031\n    - /tmp/portico-readers.sock\n"
                  "  master: true\nother:\n  processes: 9\n",
    "quoted.yaml": "uwsgi:\n  env: \"GREETING=a: b\"\n  pythonpath: '/srv/app'\n"
                   "  harakiri: 30\n",
}


def portico_pairs(path):
    return settings(show_config(path))


@pytest.mark.parametrize("name", ["same.json", *JSON_DOCS])
def test_json_files_read_as_python_json_reads_them(tmp_path, name):
    path = CONFIGS / name if name == "same.json" else write(tmp_path / name, JSON_DOCS[name])
    want = json_pairs(path.read_text())
    assert want, "the document has options"
    assert portico_pairs(path) == want


@pytest.mark.parametrize("name", ["same.yaml", *YAML_DOCS])
def test_yaml_files_read_as_pyyaml_reads_them(tmp_path, name):
    path = CONFIGS / name if name == "same.yaml" else write(tmp_path / name, YAML_DOCS[name])
    want = yaml_pairs(path.read_text())
    assert want, "the document has options"
    assert portico_pairs(path) == want
