# kernelgate bootstrap: run once in every Python kernel, silently, before any
# user code. It installs the module `_kernelgate` (in sys.modules only, so the
# user's namespace and %who stay clean) and tunes the kernel for streaming.
# Everything is best effort: a failure here must never break the kernel.
import sys as _sys
import types as _types

_KG_SOURCE = r'''
import base64
import datetime
import decimal
import importlib.abc
import json
import math
import os
import re
import sys

# 1. Stream latency. ipykernel batches prints for flush_interval (0.2 s); at
#    1 ms a print reaches the client in a few ms, while a flood still coalesces.
for _s in (sys.stdout, sys.stderr):
    if hasattr(_s, "flush_interval"):
        _s.flush_interval = 0.001

# 1b. ipykernel sleeps 0.5 ms after flushing, before every execute_reply, so
#     output reaches clients first. kernelgate ends an execution on its reply
#     AND its iopub idle (published after the output), so the sleep only adds
#     latency (about 0.8 ms per execute here; docs/benchmarks.md).
if hasattr(getattr(get_ipython(), "kernel", None), "_execute_sleep"):  # noqa: F821
    get_ipython().kernel._execute_sleep = 0  # noqa: F821

# 1c. After an error with stop_on_error, ipykernel aborts the requests already
#     waiting (a "run all" stops there), but it ends the abort only on a later
#     loop turn (call_later), after it has published idle: a client that sends
#     its next cell on that idle can see it aborted too. Ending the abort right
#     behind the requests already waiting keeps the intent without the race.
def _kernelgate_abort_queues(_k=getattr(get_ipython(), "kernel", None)):  # noqa: F821
    _k._aborting = True
    _k.shell_stream.flush()

    async def stop_aborting():
        _k._aborting = False

    _k.schedule_dispatch(stop_aborting)


try:
    _k = getattr(get_ipython(), "kernel", None)  # noqa: F821
    if (_k is not None and hasattr(_k, "_abort_queues") and hasattr(_k, "schedule_dispatch")
            and hasattr(_k, "shell_stream") and not getattr(_k, "stop_on_error_timeout", 0)):
        _k._abort_queues = _kernelgate_abort_queues
    del _k
except Exception:
    pass


# 2. Rich output, configured when the library is first imported (importing
#    pandas eagerly would cost every kernel a second at start).
def _configure_pandas(pd):
    pd.set_option("display.html.table_schema", True)
    pd.set_option("display.max_rows", 60)


def _configure_plotly(_plotly):
    import plotly.io as pio
    # Figures travel as data (application/vnd.plotly.v1+json) to every client.
    pio.renderers.default = "plotly_mimetype"


def _configure_matplotlib(_mpl):
    # ipykernel already selects the inline backend; make sure plots are PNG
    # and that plt.show() sends them at once rather than at the cell's end.
    try:
        from matplotlib_inline import backend_inline
        backend_inline.set_matplotlib_formats("png")
    except Exception:
        pass


_HOOKS = {
    "pandas": _configure_pandas,
    "plotly": _configure_plotly,
    "matplotlib.pyplot": _configure_matplotlib,
}


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Runs a hook right after a watched module finishes importing."""

    def find_spec(self, name, path, target=None):
        hook = _HOOKS.get(name)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        _HOOKS.pop(name, None)
        original = loader.exec_module

        def exec_module(module):
            original(module)
            try:
                hook(module)
            except Exception:
                pass

        loader.exec_module = exec_module
        return spec


for _name in list(_HOOKS):
    if _name in sys.modules:
        try:
            _HOOKS.pop(_name)(sys.modules[_name])
        except Exception:
            pass
sys.meta_path.insert(0, _PostImportFinder())


# 3. JSON that is always valid: NaN/Infinity become null, numpy and pandas
#    scalars become numbers, datetimes ISO strings.
def jsonable(v, depth=0):
    if depth > 20:
        return repr(v)[:200]
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, decimal.Decimal):
        return jsonable(float(v))
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        pd = sys.modules.get("pandas")
        if pd is not None and v is pd.NaT:  # NaT is a datetime subclass
            return None
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): jsonable(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset, range)):
        return [jsonable(x, depth + 1) for x in v]
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.floating):
            return jsonable(float(v))
        if isinstance(v, np.datetime64):
            return None if np.isnat(v) else str(v)
        if isinstance(v, np.ndarray):
            return jsonable(v.tolist(), depth + 1)
    pd = sys.modules.get("pandas")
    if pd is not None:
        if v is pd.NaT:
            return None
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        if isinstance(v, pd.Timedelta):
            return str(v)
        try:
            if pd.isna(v):
                return None
        except (TypeError, ValueError):
            pass
    return repr(v)[:200]


class JSON:
    """Displays as application/json, so user_expressions carry it as data."""

    def __init__(self, obj):
        self.obj = obj

    def _repr_json_(self):
        return self.obj

    def __repr__(self):
        return json.dumps(self.obj)


# 4. Variable summaries, bounded: a DataFrame is a row-capped preview with its
#    shape, never the whole frame.
_SKIP = {"In", "Out", "exit", "quit", "get_ipython"}


def _user_ns():
    ip = get_ipython()  # noqa: F821 - provided by IPython
    hidden = getattr(ip, "user_ns_hidden", {})
    return ip.user_ns, hidden


def frame_preview(df, max_rows):
    rows = len(df)
    head = df.head(max_rows)
    records = [
        {str(k): jsonable(x) for k, x in rec.items()}
        for rec in head.to_dict(orient="records")
    ]
    return {
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "data": records,
        "shape": [rows, len(df.columns)],
        "truncated": rows > max_rows,
    }


def summarize(v, max_rows=20, max_repr=200):
    import types as t
    out = {"type": type(v).__name__}
    pd = sys.modules.get("pandas")
    np = sys.modules.get("numpy")
    if pd is not None and isinstance(v, pd.DataFrame):
        out.update(frame_preview(v, max_rows))
        return out
    if pd is not None and isinstance(v, pd.Series):
        out["shape"] = [len(v)]
        out["dtype"] = str(v.dtype)
        out["data"] = jsonable(v.head(max_rows).tolist())
        out["truncated"] = len(v) > max_rows
        return out
    if np is not None and isinstance(v, np.ndarray):
        out["shape"] = list(v.shape)
        out["dtype"] = str(v.dtype)
        if v.size <= max_rows:
            out["value"] = jsonable(v)
        out["truncated"] = v.size > max_rows
        return out
    if isinstance(v, (bool, int, float, str)) or v is None:
        if isinstance(v, str) and len(v) > max_repr:
            out["value"] = v[:max_repr]
            out["truncated"] = True
        else:
            out["value"] = jsonable(v)
        return out
    if isinstance(v, (list, tuple, dict, set)):
        out["length"] = len(v)
    r = repr(v)
    out["repr"] = r[:max_repr]
    if len(r) > max_repr:
        out["truncated"] = True
    return out


def variables(max_rows=20, max_items=200):
    import types as t
    ns, hidden = _user_ns()
    result = {}
    for name, v in list(ns.items()):
        if name.startswith("_") or name in _SKIP or (name in hidden and hidden[name] is v):
            continue
        if isinstance(v, (t.ModuleType, t.FunctionType, t.BuiltinFunctionType, t.MethodType, type)):
            continue
        if len(result) >= max_items:
            break
        try:
            result[name] = summarize(v, max_rows)
        except Exception as e:
            result[name] = {"type": type(v).__name__, "error": repr(e)[:200]}
    return JSON(result)


# 4b. The AdeloopFlow final-message state: "variables" in the value style of
#     the latest AdeloopFlow backend, but bounded (small values as themselves,
#     big ones summarized), and "dataframe_variables" with row-capped records.
_FLOW_MAX_ITEMS = 100      # containers with more items are summarized
_FLOW_MAX_BYTES = 10000    # so are containers whose JSON is bigger
_FLOW_MAX_STR = 1000       # strings are cut to this many characters
_FLOW_MAX_INT_BITS = 64    # bigger ints are not sent as numbers


class _TooBig(Exception):
    pass


def _flow_small(v, budget, depth=0):
    """jsonable(v) for a small value; raises _TooBig as soon as the rough
    JSON size passes budget[0], so a huge value costs almost nothing."""
    budget[0] -= 8
    if budget[0] < 0 or depth > 20:
        raise _TooBig()
    if v is None or isinstance(v, (bool, float)):
        return jsonable(v)
    if isinstance(v, int):
        if v.bit_length() > _FLOW_MAX_INT_BITS:
            raise _TooBig()
        return v
    if isinstance(v, str):
        budget[0] -= len(v)
        if budget[0] < 0:
            raise _TooBig()
        return v
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            k = k if isinstance(k, str) else str(jsonable(k))
            budget[0] -= len(k)
            out[k] = _flow_small(x, budget, depth + 1)
        return out
    if isinstance(v, (list, tuple, set, frozenset, range)):
        if len(v) > budget[0]:
            raise _TooBig()
        return [_flow_small(x, budget, depth + 1) for x in v]
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.ndarray):
        if v.size > budget[0]:
            raise _TooBig()
        return _flow_small(v.tolist(), budget, depth + 1)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(v, (pd.DataFrame, pd.Series)):
        raise _TooBig()
    r = jsonable(v, depth)  # scalars: numpy, dates, decimals; else repr[:200]
    if isinstance(r, str):
        budget[0] -= len(r)
    elif not (r is None or isinstance(r, (bool, int, float))):
        return _flow_small(r, budget, depth + 1)
    return r


def _flow_frame(df, max_rows):
    p = frame_preview(df, max_rows)
    return {"type": "DataFrame", "shape": p["shape"], "columns": p["columns"],
            "data": p["data"], "truncated": p["truncated"]}


def _flow_value(v, max_rows):
    tname = type(v).__name__
    pd = sys.modules.get("pandas")
    np = sys.modules.get("numpy")
    if v is None or isinstance(v, (bool, float)):
        return jsonable(v)
    if isinstance(v, int):
        if v.bit_length() > _FLOW_MAX_INT_BITS:
            return {"type": tname, "bits": v.bit_length(), "truncated": True}
        return v
    if isinstance(v, str):
        return v[:_FLOW_MAX_STR]
    if pd is not None and isinstance(v, pd.DataFrame):
        return _flow_frame(v, max_rows)
    if pd is not None and isinstance(v, pd.Series):
        return summarize(v, max_rows)
    if np is not None and isinstance(v, np.ndarray):
        if v.size <= _FLOW_MAX_ITEMS:
            try:
                return _flow_small(v, [_FLOW_MAX_BYTES])
            except _TooBig:
                pass
        return {"type": "ndarray", "shape": list(v.shape), "dtype": str(v.dtype), "truncated": True}
    if np is not None and isinstance(v, (np.number, np.bool_)):
        return jsonable(v)
    if isinstance(v, (datetime.date, datetime.time, decimal.Decimal)):
        return jsonable(v)  # ISO strings (NaT: null) and numbers
    if isinstance(v, (list, tuple, dict, set, frozenset)):
        if len(v) <= _FLOW_MAX_ITEMS:
            try:
                return _flow_small(v, [_FLOW_MAX_BYTES])
            except _TooBig:
                pass
        return {"type": tname, "length": len(v), "truncated": True}
    return {"type": tname, "repr": repr(v)[:200]}


_FLOW_MAX_ENTRY = 200000  # bytes of JSON per variable or frame preview


def _flow_checked(v):
    """v, made smaller if its JSON is too big (a preview of a wide frame, or
    of cells holding big values); raises if v is not strict JSON."""
    if len(json.dumps(v, allow_nan=False)) <= _FLOW_MAX_ENTRY:
        return v
    if not isinstance(v, dict):
        return {"truncated": True}
    v = dict(v, truncated=True)
    if "data" in v:
        v["data"] = []
    if "columns" in v and len(json.dumps(v)) > _FLOW_MAX_ENTRY:
        v["columns"] = []
    if "dtypes" in v:
        v["dtypes"] = {}
    return v


def flow_state(max_rows=20, max_vars=200):
    import types as t
    ns, hidden = _user_ns()
    variables = {}
    frames = []
    previews = {}  # id(df) -> preview: df, df1 and <name> are often one frame
    pd = sys.modules.get("pandas")
    for name, v in list(ns.items()):
        if len(variables) >= max_vars and len(frames) >= max_vars:
            break
        if name.startswith("_") or name in _SKIP or (name in hidden and hidden[name] is v):
            continue
        if isinstance(v, (t.ModuleType, t.FunctionType, t.BuiltinFunctionType, t.MethodType, type)):
            continue
        tname = type(v).__name__
        if len(variables) < max_vars:
            try:
                variables[name] = _flow_checked(_flow_value(v, max_rows))
            except Exception as e:
                variables[name] = {"type": tname, "error": _flow_error(e)}
        if pd is not None and isinstance(v, pd.DataFrame) and len(frames) < max_vars:
            try:
                p = previews.get(id(v))
                if p is None:
                    p = _flow_checked(frame_preview(v, max_rows))
                    previews[id(v)] = p
                frames.append({
                    "name": name,
                    "data": p["data"],
                    "columns": [{"key": c, "label": c} for c in p["columns"]],
                    "shape": p["shape"],
                    "truncated": p["truncated"],
                })
            except Exception as e:
                frames.append({"name": name, "data": [], "columns": [], "shape": None,
                               "truncated": True, "error": _flow_error(e)})
    return JSON({"variables": variables, "dataframe_variables": frames})


def _flow_error(e):
    try:
        return ("%s: %s" % (type(e).__name__, e))[:200]
    except Exception:
        return type(e).__name__


# 5. Datasets: rows sent by a client become DataFrames under the names the
#    AdeloopFlow backend used (<safe_name>, df1..dfN, df for the first) and CSV
#    files in the kernel's working directory.
def safe_name(name, i, prefix="dataset"):
    s = name.lower().replace(" ", "_").replace("-", "_")
    s = "".join(ch for ch in s if ch.isalnum() or ch == "_")
    if not s:
        return "%s_%d" % (prefix, i + 1)
    if s[0].isdigit():
        return "%s_%s" % (prefix, s)
    return s


def load_datasets_b64(payload):
    import pandas as pd
    datasets = json.loads(base64.b64decode(payload).decode("utf-8"))
    ns, _ = _user_ns()
    loaded = []
    errors = []
    for i, ds in enumerate(datasets):
        name = ds.get("name")
        if name is None:
            name = "Dataset %d" % (i + 1)
        rows = ds.get("data")
        if not isinstance(name, str) or not name.strip():
            errors.append("dataset %d: name must be a non-empty string" % (i + 1))
            continue
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            errors.append("dataset %r: data must be a list of row objects" % name)
            continue
        df = pd.DataFrame(rows)
        var = safe_name(name, i)
        ns[var] = df
        ns["df%d" % (i + 1)] = df
        if i == 0:
            ns["df"] = df
        files = []
        for fn in (name + ".csv", "dataset%d.csv" % (i + 1), var + ".csv"):
            if "/" in fn or fn.startswith("."):
                continue
            try:
                df.to_csv(fn, index=False)
                files.append(fn)
            except OSError as e:
                errors.append("dataset %r: cannot write %s: %s" % (name, fn, e.strerror))
        loaded.append({"name": name, "variable": var, "csv_file": files[0] if files else None,
                       "shape": [len(df), len(df.columns)], "type": "local"})
    ns["_available_datasets"] = loaded
    return JSON({"loaded": loaded, "errors": errors})

# 6. variableContext: names a client sets before its code runs. Only string
#    keys that are identifiers and do not start with "_" are set.
def set_variables_b64(payload):
    values = json.loads(base64.b64decode(payload).decode("utf-8"))
    ns, _ = _user_ns()
    set_names, errors = [], []
    if not isinstance(values, dict):
        return JSON({"set": [], "errors": ["variables must be a JSON object"]})
    for name, value in values.items():
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            errors.append("variable %r was not set: names must be identifiers not starting with _" % (name,))
            continue
        ns[name] = value
        set_names.append(name)
    return JSON({"set": set_names, "errors": errors})


# 7. Output before a prompt: ipykernel flushes stdout, then sends the
#    input_request on the stdin socket, while the text went out on iopub; a
#    client reading both sockets may see the prompt first. A marker sent on
#    iopub after the flush lets the gateway hold the prompt until everything
#    printed before it has arrived.
INPUT_MARKER = "kernelgate_input_marker"


def _install_input_marker():
    kernel = getattr(get_ipython(), "kernel", None)
    original = getattr(kernel, "_input_request", None)
    if original is None or not hasattr(kernel, "_topic"):
        return

    def _input_request(prompt, ident, parent, password=False):
        try:
            sys.stderr.flush()
            sys.stdout.flush()
            kernel.session.send(kernel.iopub_socket, INPUT_MARKER, {}, parent=parent,
                                ident=kernel._topic(INPUT_MARKER))
        except Exception:
            pass
        return original(prompt, ident, parent, password=password)

    kernel._input_request = _input_request


try:
    _install_input_marker()
except Exception:
    pass
'''

_kg = _types.ModuleType("_kernelgate")
_kg.__dict__["get_ipython"] = get_ipython  # noqa: F821 - provided by IPython
exec(compile(_KG_SOURCE, "<kernelgate>", "exec"), _kg.__dict__)
_sys.modules["_kernelgate"] = _kg
del _sys, _types, _kg, _KG_SOURCE
