"""Fuzzing the manifest, index and latest.json parsers with hypothesis.

Reliability requirement: whatever a store hands us, parsing it ends in a value or in one of our
typed errors (``SageTasksError`` subclasses), never in a KeyError, TypeError, ValueError,
RecursionError, UnicodeError... And the hand-written schema validator (``minischema``) agrees
with the ``jsonschema`` library on which documents are valid.

Each parser gets at least 2,000 generated cases; ``teardown_module`` prints the counts
(visible with ``pytest -s``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from functools import cache

import jsonschema
import referencing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sage_tasks.core import minischema
from sage_tasks.core.errors import IntegrityError, SageTasksError, StoreError
from sage_tasks.store import manifest
from tests import support

FUZZ = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

CASES: dict[str, int] = {}  # examples run, per parser
HELD: dict[str, int] = {}  # of those, examples whose check passed: a typed error or a value that is safe


@contextlib.contextmanager
def case(name: str) -> Iterator[None]:
    """One generated example for ``name``: counted when it starts, and as held only when the body
    ends without an assertion (an early ``return`` on a typed error counts as held)."""
    CASES[name] = CASES.get(name, 0) + 1
    yield
    HELD[name] = HELD.get(name, 0) + 1


def teardown_module() -> None:
    print("\nfuzz cases: " + " ".join(f"{name}={n} (held {HELD.get(name, 0)})" for name, n in CASES.items()))
    for name, n in CASES.items():
        support.count_fault(f"fuzzed documents: {name}", injected=n, survived=HELD.get(name, 0))


# ---------------------------------------------------------------- the schema, twice

SCHEMA_FILE = support.REPO / "manifests" / "schema" / "wheel-manifest.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
INDEX_REF = {"$ref": "#/$defs/index"}
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
INDEX_VALIDATOR = jsonschema.Draft202012Validator(
    {"$ref": SCHEMA["$id"] + "#/$defs/index"},
    registry=referencing.Registry().with_resource(SCHEMA["$id"], referencing.Resource.from_contents(SCHEMA)),
)
jsonschema.Draft202012Validator.check_schema(SCHEMA)

# ---------------------------------------------------------------- valid documents to mutate

VALID = json.loads(json.dumps(support.entry().to_dict()))
VALID_2 = json.loads(
    json.dumps(
        support.entry(
            wheel_file="sageattention-2.2.0+cu128torch2.8.0-cp312-abi3-linux_x86_64.whl", yanked=None
        ).to_dict()
    )
)
VALID_INDEX = {"schema_version": 1, "updated_at": "2026-11-01T00:00:00Z", "wheels": [VALID, VALID_2]}
LEGACY_WHEEL = "sageattention-2.2.0-cp312-cp312-linux_x86_64.whl"
VALID_LEGACY = support.legacy_latest(
    LEGACY_WHEEL, "a" * 64, hf_wheel_url=f"https://huggingface.co/org/wheels/resolve/main/sage/{LEGACY_WHEEL}"
)

FIELDS = sorted(SCHEMA["properties"])
NESTED = {
    "source": sorted(SCHEMA["properties"]["source"]["properties"]),
    "build": sorted(SCHEMA["properties"]["build"]["properties"]),
    "verification": sorted(SCHEMA["properties"]["verification"]["properties"]),
    "yanked": sorted(SCHEMA["properties"]["yanked"]["properties"]),
}
NUMERIC_FIELDS = ["schema_version", "wheel_size", "build.seconds", "build.max_jobs", "build.ext_parallel"]
INDEX_FIELDS = sorted(SCHEMA["$defs"]["index"]["properties"])

# ---------------------------------------------------------------- strategies: text

FRAGMENTS = [
    "", " ", "  ", "\t", "\n", "\r\n", "\x00", "\x7f", "\x1b[31m", "/", "//", "\\", "..", "../", "..\\",
    "./", ".", "%2F", "%2f", "%2e%2e", "%2e%2e%2F", "%00", "%", "~", "$HOME", "C:\\", "C:", "/etc/passwd",
    "\u202e", "\ufeff", "\u200b", "\u00a0", "é", "ß", "İ", "🐍", "١٢٣", "٩", "Ⅷ", "²", "NUL", "CON",
    "\ud800", "\udfff", "-", "--", "+", "!", "_", ".whl", "-py3-none-any.whl", ".json", "sm_90a", "12.0",
]  # fmt: skip
FRAGMENT = st.sampled_from(FRAGMENTS)
SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
LONG = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["a", "1", "9", ".", "/", "a/", "../", "\\", "%2F", "é", "-"]),
    st.sampled_from([64, 65, 100, 101, 200, 256, 1000, 2001, 4400, 5000]),
)
TEXT = st.one_of(
    st.text(max_size=24),
    st.text(st.sampled_from("aZ09._-+!/\\% \x00\n"), max_size=24),
    FRAGMENT,
    st.lists(st.one_of(FRAGMENT, st.text(max_size=4)), min_size=2, max_size=5).map("".join),
    SURROGATES,
    LONG,
)

# ---------------------------------------------------------------- strategies: JSON values

# Huge integers, up to the largest json.loads returns: Python's int/str conversion limit
# (sys.get_int_max_str_digits(), 4,300 digits by default) is process-wide, so a parsed document
# never holds an int that str() cannot write. Longer digit runs are fuzzed as raw bytes (test 4)
# and as strings (versions, CUDA flavours). Exponents, not integers, are sampled: hypothesis
# reprs sampled_from elements.
MAX_DIGITS = sys.get_int_max_str_digits() or 4300
HUGE_INTS = st.builds(
    lambda sign, exponent, offset: sign * (10**exponent + offset),
    st.sampled_from([1, -1]),
    st.sampled_from([10, 19, 20, 38, 100, 308, 309, MAX_DIGITS - 1]),
    st.sampled_from([-1, 0, 1]),
)


def _nested(depth: int, kind: str) -> object:
    # The same shapes a JSON file could hold: parse_json accepts ~990 levels from a shallow stack.
    value: object = []
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


DEEP = st.builds(_nested, st.sampled_from([50, 500, 900]), st.sampled_from(["list", "dict"]))


def numbers(*, finite: bool = False, huge: bool = True) -> st.SearchStrategy:
    ints = st.one_of(st.integers(), HUGE_INTS) if huge else st.integers()
    return st.one_of(
        ints,
        st.floats(allow_nan=not finite, allow_infinity=not finite),
        st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, 2.0, 0.5, 1e300]),
    )


def json_values(*, finite: bool = False, huge: bool = True, deep: bool = True) -> st.SearchStrategy:
    """Arbitrary JSON-shaped Python values (what ``json.loads`` can return).

    ``finite`` drops nan/inf (not JSON); ``huge`` adds integers of up to 4,300 digits;
    ``deep`` adds lists/dicts nested hundreds of levels deep.
    """
    leaves = st.one_of(st.none(), st.booleans(), numbers(finite=finite, huge=huge), TEXT)
    if deep:
        leaves = st.one_of(leaves, DEEP)
    keys = st.one_of(st.sampled_from(FIELDS + list(VALID_LEGACY) + ["wheels", "status", "repo"]), TEXT)
    return st.recursive(
        leaves,
        lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(keys, kids, max_size=4)),
        max_leaves=6,
    )


ANY_JSON = json_values()
ANY_NUMBER = numbers()
FINITE_JSON = json_values(finite=True, deep=False)
FINITE_NUMBER = numbers(finite=True)

# ---------------------------------------------------------------- strategies: names and paths

NAME_CHARS = st.sampled_from("abcXYZ019_.+!-")


def _name_part(min_size: int = 1) -> st.SearchStrategy:
    return st.one_of(
        st.text(NAME_CHARS, min_size=min_size, max_size=8),
        st.lists(st.one_of(FRAGMENT, st.text(NAME_CHARS, max_size=3)), min_size=1, max_size=3).map("".join),
    )


WHEEL_PARTS = {
    "dist": st.one_of(
        st.sampled_from(["sageattention", "sage_demo", "a", "A1"]),
        st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9_.]{0,8}[A-Za-z0-9])?", fullmatch=True),
    ),
    "version": st.sampled_from(["2.2.0", "2.2.0+cu128torch2.8.0", "1!2.0.post1", "0", "1.0rc1", "2.2.0+local.v1"]),
    "build": st.sampled_from(["", "", "-1", "-1abc"]),
    "py": st.sampled_from(["cp312", "py3", "py2.py3"]),
    "abi": st.sampled_from(["cp312", "abi3", "none"]),
    "plat": st.sampled_from(["linux_x86_64", "any", "manylinux_2_28_x86_64", "win_amd64"]),
    "pre": st.just(""),
    "post": st.just(""),
}


HOSTILE_PARTS = st.lists(st.sampled_from(sorted(WHEEL_PARTS)), max_size=2, unique=True)
HOSTILE_PART = st.one_of(_name_part(), FRAGMENT)


@st.composite
def shaped_wheel_names(draw) -> str:
    """A plausible wheel name with none, one or two of its parts made hostile."""
    parts = {key: draw(strategy) for key, strategy in WHEEL_PARTS.items()}
    for key in draw(HOSTILE_PARTS):
        hostile = draw(HOSTILE_PART)
        parts[key] = f"-{hostile}" if key == "build" else hostile
    return "{pre}{dist}-{version}{build}-{py}-{abi}-{plat}.whl{post}".format(**parts)


WHEEL_NAMES = st.one_of(
    shaped_wheel_names(),
    # long parts: versions past the 4,300-digit int limit, names past 255 characters
    st.builds(
        lambda piece, n: f"sageattention-{piece * n}-cp312-cp312-linux_x86_64.whl",
        st.sampled_from(["1", "1.", "a"]),
        st.sampled_from([10, 300, MAX_DIGITS, MAX_DIGITS + 1, 5000]),
    ),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+!-]*\.whl", fullmatch=True),
    TEXT,
)
PATH_PREFIXES = [
    "", "wheels/", "sub/dir/", "/", "/abs/", "../", "a/../", "./", "wheels//", "wheels\\", "%2e%2e/", ".git/",
    "a..b/", "_x/", " wheels/", "wheels /", "C:/", "~/", "\x00/",
]  # fmt: skip
RELATIVE_PATHS = st.one_of(
    st.lists(st.one_of(_name_part(0), FRAGMENT), min_size=1, max_size=4).map("/".join),
    st.builds(lambda prefix, name: prefix + name, st.sampled_from(PATH_PREFIXES), WHEEL_NAMES),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*(/[A-Za-z0-9_][A-Za-z0-9_.+!-]*)*", fullmatch=True),
    TEXT,
)

# ---------------------------------------------------------------- strategies: mutations


# Strategies used inside the composites below are built once here: building them per draw
# costs hypothesis a validation each time.
PICK = st.integers(0, 255)
TEXT_HOWS = st.sampled_from(["prefix", "suffix", "insert", "replace", "repeat", "text"])
HOSTILE = st.one_of(FRAGMENT, TEXT)
REPEATS = st.sampled_from([2, 10, 100])
OPS = st.integers(1, 3)
BOOLS = st.booleans()
PREFIXES = st.sampled_from(PATH_PREFIXES)
STRING_FIELDS = [k for k in FIELDS if isinstance(VALID.get(k), str)]
BINARY_FILES = st.one_of(st.sampled_from(["sageattention/_qattn.so", "x"]), TEXT)
NESTED_FIELDS = {key: st.one_of(st.sampled_from(names), TEXT) for key, names in NESTED.items()}
MANIFEST_OPS = st.sampled_from(["replace", "delete", "add", "text", "rename", "path", "nested", "nested", "number"])


def pick(draw, items):
    """One of ``items`` (shrinks towards the first)."""
    items = list(items)
    return items[draw(PICK) % len(items)]


def _mutate_text(draw, text: object) -> object:
    """A string field changed: hostile fragments around or inside it, or something else entirely."""
    base = text if isinstance(text, str) else ""
    how = draw(TEXT_HOWS)
    fragment = draw(HOSTILE)
    if how == "prefix":
        return fragment + base
    if how == "suffix":
        return base + fragment
    if how == "insert":
        at = draw(PICK) % (len(base) + 1)
        return base[:at] + fragment + base[at:]
    if how == "repeat":
        return base * draw(REPEATS)
    if how == "replace":
        return fragment
    return draw(TEXT)


def _tags_of(name: str) -> tuple[str, str, str] | None:
    parts = name[:-4].split("-") if name.endswith(".whl") else []
    return (parts[-3], parts[-2], parts[-1]) if len(parts) >= 3 else None


def _rename(draw, doc: dict) -> None:
    """Give the wheel a hostile file name, keeping path and tags consistent so later checks are reached."""
    name = draw(WHEEL_NAMES)
    doc["wheel_file"] = name
    doc["wheel_path"] = draw(PREFIXES) + name
    tags = _tags_of(name)
    if tags and draw(BOOLS):
        doc["python_tag"], doc["abi_tag"], doc["platform_tag"] = tags


@st.composite
def mutated_manifests(draw, values: st.SearchStrategy = ANY_JSON, number: st.SearchStrategy = ANY_NUMBER) -> dict:
    """A valid manifest with one or more fields replaced, deleted, added, renamed or mutated."""
    doc = json.loads(json.dumps(VALID))
    for _ in range(draw(OPS)):
        op = draw(MANIFEST_OPS)
        if op == "number":
            key = pick(draw, NUMERIC_FIELDS)
            if key.startswith("build."):
                build = dict(doc["build"]) if isinstance(doc.get("build"), dict) else {}
                build[key.removeprefix("build.")] = draw(number)
                doc["build"] = build
            else:
                doc[key] = draw(number)
        elif op == "replace":
            doc[pick(draw, FIELDS)] = draw(values)
        elif op == "delete" and doc:
            del doc[pick(draw, sorted(doc))]
        elif op == "add":
            doc[draw(TEXT)] = draw(values)
        elif op == "text":
            key = pick(draw, STRING_FIELDS)
            doc[key] = _mutate_text(draw, doc.get(key))
        elif op == "rename":
            _rename(draw, doc)
        elif op == "path":
            doc["wheel_path"] = draw(RELATIVE_PATHS)
        elif op == "nested":
            key = pick(draw, [*NESTED, "binaries"])
            sub = doc.get(key)
            sub = dict(sub) if isinstance(sub, dict) else {}
            if key == "binaries":
                sub[draw(BINARY_FILES)] = draw(binaries(values))
            else:
                field = draw(NESTED_FIELDS[key])
                if draw(BOOLS) or not isinstance(sub.get(field), str):
                    sub[field] = draw(values)
                else:
                    sub[field] = _mutate_text(draw, sub[field])
            doc[key] = sub
    return doc


@cache
def binaries(values: st.SearchStrategy) -> st.SearchStrategy:
    """A ``binaries`` entry: any value, or the right shape with hostile arch names."""
    arch = st.one_of(st.sampled_from(["sm_120", "sm_90a", "compute_120"]), TEXT, values)
    return st.one_of(
        values,
        st.fixed_dictionaries({"sass": st.lists(arch, max_size=3)}, optional={"ptx": st.lists(arch, max_size=3)}),
    )


MUTATED_MANIFESTS = mutated_manifests()
FINITE_MANIFESTS = mutated_manifests(FINITE_JSON, FINITE_NUMBER)
INDEX_OPS = st.sampled_from(["replace", "delete", "add", "entry", "append", "drop", "duplicate"])
INDEX_ENTRIES = st.one_of(MUTATED_MANIFESTS, ANY_JSON)


@st.composite
def mutated_indexes(draw) -> dict:
    """A valid index whose top level or wheel list is changed."""
    doc = {"schema_version": 1, "updated_at": VALID_INDEX["updated_at"], "wheels": [VALID, VALID_2]}
    for _ in range(draw(OPS)):
        op = draw(INDEX_OPS)
        wheels = doc.get("wheels")
        wheels = list(wheels) if isinstance(wheels, list) else None
        if op == "replace":
            doc[pick(draw, INDEX_FIELDS)] = draw(ANY_JSON)
        elif op == "delete" and doc:
            del doc[pick(draw, sorted(doc))]
        elif op == "add":
            doc[draw(TEXT)] = draw(ANY_JSON)
        elif wheels is None:
            continue
        elif op == "entry" and wheels:
            wheels[draw(PICK) % len(wheels)] = draw(MUTATED_MANIFESTS)
        elif op == "append":
            wheels.append(draw(INDEX_ENTRIES))
        elif op == "drop" and wheels:
            del wheels[draw(PICK) % len(wheels)]
        elif op == "duplicate" and wheels:
            wheels.append(pick(draw, wheels))
        if wheels is not None:
            doc["wheels"] = wheels
    return doc


LEGACY_STRINGS = {
    "torch_version": [
        "2.8.0+cu", "2.8.0+cu1", "2.8.0+cu12", "2.8.0+cu128", "2.8.0+cu1300", "2.8.0+cpu", "+cu128", "2.8.0+",
        "2.8.0+cu١٢٨", "2.8.0+cu999", "2.8.0+cu128+cu128",
    ],
    "target_arch": [
        "", ";", "12.0;9.0+PTX", "8.0 8.6 8.9 9.0 12.0", "sm_90a", "sm_120", "0.5", "99.9", "12.0a", "12.0f",
        "١٢.٠", "12.0\n", "12.0 \x00",
    ],
}  # fmt: skip
LEGACY_LONG = {
    # a CUDA flavour with a digit run past the int conversion limit
    "torch_version": st.builds(lambda n: "2.8.0+cu" + "9" * n, st.sampled_from([100, 4299, 4302, 5000])),
    # many archs: duplicates, and more distinct archs than the schema's 64
    "target_arch": st.builds(
        lambda n, sep: sep.join(f"{m}.{k}" for m in range(1, 12) for k in range(10))[: n * 4] or "12.0",
        st.sampled_from([1, 64, 65, 110]),
        st.sampled_from([";", ",", " "]),
    ),
}


LEGACY_OPS = st.sampled_from(["replace", "delete", "add", "text", "wheel", "special"])
LEGACY_SPECIAL = {
    key: st.one_of(st.sampled_from(LEGACY_STRINGS[key]), LEGACY_LONG[key], TEXT) for key in sorted(LEGACY_STRINGS)
}


@st.composite
def mutated_legacy(draw) -> dict:
    """A valid bash-installer latest.json with fields replaced, deleted, added or mutated."""
    doc = dict(VALID_LEGACY)
    for _ in range(draw(OPS)):
        op = draw(LEGACY_OPS)
        if op == "replace":
            doc[pick(draw, sorted(VALID_LEGACY))] = draw(ANY_JSON)
        elif op == "delete" and doc:
            del doc[pick(draw, sorted(doc))]
        elif op == "add":
            doc[draw(TEXT)] = draw(ANY_JSON)
        elif op == "text":
            key = pick(draw, sorted(VALID_LEGACY))
            doc[key] = _mutate_text(draw, doc.get(key))
        elif op == "wheel":
            doc["wheel_file"] = draw(WHEEL_NAMES)
        else:
            key = pick(draw, sorted(LEGACY_SPECIAL))
            doc[key] = draw(LEGACY_SPECIAL[key])
    return doc


# ---------------------------------------------------------------- known findings, pinned as explicit examples

# A version with more digits than int() converts (packaging's Version raises ValueError).
LONG_VERSION_WHEEL = f"sageattention-{'1' * (MAX_DIGITS + 1)}-cp312-cp312-linux_x86_64.whl"
# A CUDA flavour whose number has more digits than int() converts.
LONG_CUDA_TORCH = "2.8.0+cu" + "9" * (MAX_DIGITS + 2)

# ---------------------------------------------------------------- checks


def typed_or_value(fn, *args):
    """``fn(*args)``, or None where it raised one of our typed errors; anything else fails the test."""
    try:
        return fn(*args)
    except SageTasksError:
        return None
    except Exception as e:  # the requirement under test: no other exception type escapes
        raise AssertionError(f"{fn.__name__} raised untyped {type(e).__name__}: {str(e)[:300]}") from e


def assert_safe_entry(entry: manifest.WheelManifest) -> None:
    assert isinstance(entry, manifest.WheelManifest)
    assert manifest.check_wheel_name(entry.wheel_file) == entry.wheel_file
    parts = entry.wheel_path.split("/")
    assert ".." not in parts, entry.wheel_path
    assert not entry.wheel_path.startswith("/"), entry.wheel_path
    assert "\\" not in entry.wheel_path and "\x00" not in entry.wheel_path, entry.wheel_path
    assert parts[-1] == entry.wheel_file


# ---------------------------------------------------------------- 1. manifests


@FUZZ
@given(doc=st.one_of(ANY_JSON, MUTATED_MANIFESTS))
def test_from_dict_only_typed_errors(doc):
    with case("from_dict"):
        result = typed_or_value(manifest.from_dict, doc)
        if result is not None:
            assert_safe_entry(result)


# ---------------------------------------------------------------- 2. index.json


@FUZZ
@given(doc=st.one_of(ANY_JSON, mutated_indexes()))
def test_index_from_dict_only_typed_errors(doc):
    with case("index_from_dict"):
        try:
            index = manifest.index_from_dict(doc)
        except StoreError:
            return
        except Exception as e:
            raise AssertionError(f"index_from_dict raised {type(e).__name__} (want StoreError): {str(e)[:300]}") from e
        names = [w.wheel_file for w in index.wheels]
        assert len(names) == len(set(names))
        for entry in index.wheels:
            assert_safe_entry(entry)


# ---------------------------------------------------------------- 3. the bash installer's latest.json


@FUZZ
@given(doc=st.one_of(ANY_JSON, mutated_legacy()))
@example(doc={**VALID_LEGACY, "torch_version": LONG_CUDA_TORCH})
@example(doc={**VALID_LEGACY, "wheel_file": LONG_VERSION_WHEEL})
def test_from_legacy_latest_only_typed_errors(doc):
    with case("from_legacy_latest"):
        result = typed_or_value(manifest.from_legacy_latest, doc, "latest.json")
        if result is not None:
            assert_safe_entry(result)
            assert result.legacy


def test_valid_samples_parse():
    """The seeds the mutations start from are valid, so mutations explore near valid documents."""
    assert manifest.from_dict(VALID).wheel_file == VALID["wheel_file"]
    assert len(manifest.index_from_dict(VALID_INDEX).wheels) == 2
    assert manifest.from_legacy_latest(VALID_LEGACY, "latest.json").torch_cuda == "12.8"
    assert minischema.errors(VALID, SCHEMA) == [] and VALIDATOR.is_valid(VALID)


# ---------------------------------------------------------------- 4. raw bytes


def _encode(value, encoding: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode(encoding, "surrogatepass")


RAW = st.one_of(
    st.binary(max_size=200),
    st.builds(_encode, FINITE_JSON, st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "utf-8-sig"])),
    st.builds(lambda raw, cut: raw[:cut], st.builds(_encode, FINITE_JSON, st.just("utf-8")), st.integers(0, 50)),
    st.builds(
        lambda piece, n, close: piece * n + (close * n if close else b""),
        st.sampled_from([b"[", b"{", b'{"a":', b'{"a":[', b"[1,"]),
        st.sampled_from([10, 900, 1000, 5000, 100_000]),
        st.sampled_from([b"", b"]", b"}"]),
    ),
    st.builds(
        lambda head, digits, n, tail: head + digits * n + tail,
        st.sampled_from([b"", b"-", b"[", b'{"wheel_size": ', b"0.", b"1e"]),
        st.sampled_from([b"1", b"9"]),
        st.sampled_from([10, 4300, 4301, 5000, 20_000]),
        st.sampled_from([b"", b"]", b"}", b".5", b"e5"]),
    ),
    st.sampled_from(
        [b"", b" ", b"\xef\xbb\xbf{}", b"\xff\xfe", b"\xfe\xff\x00[", b"NaN", b"-Infinity", b"1e999999", b'"\\ud800"']
    ),
)


@FUZZ
@given(
    raw=st.one_of(RAW, st.text(max_size=50), SURROGATES),
    error=st.sampled_from([None, StoreError, IntegrityError]),
)
@example(raw=b"1" * (MAX_DIGITS + 1), error=None)
def test_parse_json_only_typed_errors(raw, error):
    with case("parse_json"):
        want = error or StoreError
        try:
            manifest.parse_json(raw, "x") if error is None else manifest.parse_json(raw, "x", error)
        except want:
            pass
        except Exception as e:
            raise AssertionError(f"parse_json raised {type(e).__name__} (want {want.__name__}): {str(e)[:300]}") from e


VALID_BYTES = json.dumps(VALID, indent=2).encode()
FILE_BYTES = st.one_of(
    RAW,
    st.builds(_encode, FINITE_MANIFESTS, st.sampled_from(["utf-8", "utf-16"])),
    # a valid manifest file with a few bytes overwritten (disk or transfer corruption)
    st.builds(
        lambda flips: bytes(flips.get(i, b) for i, b in enumerate(VALID_BYTES)),
        st.dictionaries(st.integers(0, len(VALID_BYTES) - 1), st.integers(0, 255), min_size=1, max_size=3),
    ),
    st.builds(lambda cut: VALID_BYTES[:cut], st.integers(0, len(VALID_BYTES))),
)


@FUZZ
@given(raw=FILE_BYTES)
@example(raw=b'{"package": "\xff"}')
def test_read_manifest_file_only_typed_errors(raw, tmp_path_factory):
    with case("read_manifest_file"):
        path = tmp_path_factory.getbasetemp() / "fuzz-manifest.json"
        path.write_bytes(raw)
        result = typed_or_value(manifest.read_manifest_file, path)
        if result is not None:
            assert_safe_entry(result)


# ---------------------------------------------------------------- 5. names and paths


@FUZZ
@given(name=st.one_of(WHEEL_NAMES, ANY_JSON))
@example(name=LONG_VERSION_WHEEL)
def test_check_wheel_name(name):
    with case("check_wheel_name"):
        try:
            accepted = manifest.check_wheel_name(name)
        except IntegrityError:
            return
        except Exception as e:
            raise AssertionError(f"check_wheel_name raised {type(e).__name__}: {str(e)[:300]}") from e
        assert accepted is name
        for bad in ("..", "/", "\\", "%", "\x00"):
            assert bad not in name, (bad, name)
        assert name == name.strip()
        assert not name.startswith((".", "/"))
        assert name.endswith(".whl")


@FUZZ
@given(path=st.one_of(RELATIVE_PATHS, ANY_JSON))
def test_check_relative_path(path):
    with case("check_relative_path"):
        try:
            accepted = manifest.check_relative_path(path)
        except IntegrityError:
            return
        except Exception as e:
            raise AssertionError(f"check_relative_path raised {type(e).__name__}: {str(e)[:300]}") from e
        assert accepted is path
        for bad in ("\\", "%", "\x00"):
            assert bad not in path, (bad, path)
        assert path == path.strip()
        assert not path.startswith((".", "/"))
        # ".." as a whole component is traversal; inside a name ("a..b") it is a plain name.
        parts = path.split("/")
        assert all(part and not part.startswith(".") for part in parts), path


# ---------------------------------------------------------------- 6. minischema agrees with jsonschema


def _agree(doc, mini_schema, validator, what: str) -> None:
    mini = minischema.errors(doc, mini_schema, SCHEMA)
    lib = validator.is_valid(doc)
    if (mini == []) != lib:
        lib_errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]
        changed = ""
        if isinstance(doc, dict):
            same = {k for k in doc if k in VALID and json.dumps(doc[k]) == json.dumps(VALID[k])}
            diff = {k: doc.get(k, "<deleted>") for k in sorted({*doc, *VALID} - same)}
            changed = f" (fields that differ from the valid manifest: {repr(diff)[:1000]})"
        raise AssertionError(
            f"minischema and jsonschema disagree on a {what}{changed}: "
            f"minischema says {'valid' if not mini else 'invalid: ' + '; '.join(mini[:3])}, "
            f"jsonschema says {'valid' if lib else 'invalid: ' + '; '.join(lib_errors[:3])}"
        )


@FUZZ
@given(doc=st.one_of(FINITE_JSON, FINITE_MANIFESTS))
@example(doc={**VALID, "schema_version": 1.0})
def test_minischema_agrees_with_jsonschema(doc):
    # Without nan/inf (not JSON) and without values nested hundreds deep (jsonschema's
    # messages repr the instance); those inputs are test 1's business.
    with case("schema_agreement"):
        _agree(doc, SCHEMA, VALIDATOR, "manifest")
        _agree({"schema_version": 1, "wheels": [doc]}, INDEX_REF, INDEX_VALIDATOR, "index")
