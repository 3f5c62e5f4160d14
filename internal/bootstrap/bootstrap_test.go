package bootstrap

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestCode(t *testing.T) {
	c := Code()
	if strings.TrimSpace(c) == "" {
		t.Fatal("Code() is empty")
	}
	for _, want := range []string{"flush_interval", `_sys.modules["_kernelgate"]`, "def variables(", "def load_datasets_b64(", "def safe_name("} {
		if !strings.Contains(c, want) {
			t.Errorf("Code() does not contain %q", want)
		}
	}
	if c != Code() {
		t.Error("Code() is not stable")
	}
}

func TestVariablesExpr(t *testing.T) {
	tests := []struct {
		rows, items int
		want        string
	}{
		{20, 200, "__import__('_kernelgate').variables(20, 200)"},
		{0, 0, "__import__('_kernelgate').variables(0, 0)"},
		{5, 1, "__import__('_kernelgate').variables(5, 1)"},
		{1000000, 7, "__import__('_kernelgate').variables(1000000, 7)"},
	}
	for _, tt := range tests {
		if got := VariablesExpr(tt.rows, tt.items); got != tt.want {
			t.Errorf("VariablesExpr(%d, %d) = %q, want %q", tt.rows, tt.items, got, tt.want)
		}
	}
}

var loadExprRE = regexp.MustCompile(`^__import__\('_kernelgate'\)\.load_datasets_b64\('([A-Za-z0-9+/=]*)'\)$`)

func TestLoadDatasetsExpr(t *testing.T) {
	tests := []struct {
		name string
		json string
	}{
		{"empty array", `[]`},
		{"empty input", ``},
		{"simple", `[{"name":"sales","data":[{"a":1}]}]`},
		{"quotes", `[{"name":"it's \"quoted\" ''' \"\"\"","data":[{"q":"'); import os; ('"}]}]`},
		{"newlines and backslashes", "[{\"name\":\"a\\nb\",\"data\":[{\"t\":\"line1\\nline2\\\\\"}]}]\n"},
		{"non-ASCII", `[{"name":"Données 1 – 売上 🚀","data":[{"é":"ü","x":null}]}]`},
		{"raw control bytes", "[{\"name\":\"tab\there\",\"data\":[]}]\r\n\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.json)
			expr := LoadDatasetsExpr(in)
			m := loadExprRE.FindStringSubmatch(expr)
			if m == nil {
				t.Fatalf("LoadDatasetsExpr = %q, not a call with one base64 string literal", expr)
			}
			got, err := base64.StdEncoding.DecodeString(m[1])
			if err != nil {
				t.Fatalf("argument %q is not base64: %v", m[1], err)
			}
			if diff := cmp.Diff(in, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// pythonHarness runs the bootstrap in a real IPython shell and prints one
// line "KGRESULT <json>" for the Go side to check. Inputs come as JSON on
// stdin so that no test data is ever quoted into Python source.
const pythonHarness = `
import json, sys, os
try:
    from IPython.core.interactiveshell import InteractiveShell
except ImportError as e:
    print("KGNOIPYTHON %s" % e)
    sys.exit(3)

cfg = json.load(sys.stdin)
res = {}
ip = InteractiveShell.instance()

if cfg["preimport"]:
    ip.run_cell("import pandas")
res["pandas_before_boot"] = "pandas" in sys.modules

def public(ns):
    return {k for k in ns if not k.startswith("_")}

before = public(ip.user_ns)
before_all = set(ip.user_ns)
r = ip.run_cell(cfg["code"], silent=True, store_history=False)
res["boot_ok"] = bool(r.success)
res["boot_error"] = repr(r.error_before_exec or r.error_in_exec) if not r.success else ""
res["new_public_names"] = sorted(public(ip.user_ns) - before)
res["new_names"] = sorted(set(ip.user_ns) - before_all)
res["in_sys_modules"] = "_kernelgate" in sys.modules
kg = sys.modules.get("_kernelgate")

r = ip.run_cell("import pandas as pd\nimport numpy as np\nimport datetime")
res["import_ok"] = bool(r.success)
pd = sys.modules["pandas"]
res["table_schema"] = pd.get_option("display.html.table_schema")
res["max_rows"] = pd.get_option("display.max_rows")

res["safe_names"] = [kg.safe_name(name, i) for name, i in cfg["safe_names"]]

res["jsonable"] = []
for expr in cfg["jsonable"]:
    v = kg.jsonable(eval(expr, ip.user_ns))
    res["jsonable"].append({"value": v, "type": type(v).__name__})

r = ip.run_cell(
    "big = pd.DataFrame({'a': range(10000), 'b': ['x'] * 10000})\n"
    "small = pd.DataFrame({'n': [1.5, float('nan')]})\n"
    "nan = float('nan')\n"
    "word = 'hello'\n"
    "arr = np.arange(3, dtype=np.int64)\n"
    "def f():\n    pass\n"
)
res["setup_ok"] = bool(r.success)

def expr_value(expr):
    out = ip.user_expressions({"e": expr})["e"]
    if out.get("status") != "ok":
        return {"status": out.get("status"), "ename": out.get("ename"), "evalue": out.get("evalue")}
    return {"status": "ok", "json": out["data"].get("application/json"), "mimes": sorted(out["data"])}

res["variables"] = expr_value(cfg["vars_expr"])
res["load"] = expr_value(cfg["load_expr"])

ns = ip.user_ns
res["namespace"] = {}
for name in cfg["expect_vars"]:
    v = ns.get(name)
    if v is None:
        res["namespace"][name] = None
        continue
    res["namespace"][name] = {
        "type": type(v).__name__,
        "shape": list(v.shape) if hasattr(v, "shape") else None,
        "nulls": int(v.isna().sum().sum()) if hasattr(v, "isna") else None,
    }
res["df_is_df1"] = ns.get("df") is not None and ns.get("df") is ns.get("df1")
res["df1_is_safe"] = ns.get("df1") is not None and ns.get("df1") is ns.get("sales_data_2024")
res["available_datasets"] = len(ns.get("_available_datasets", []))

print("KGRESULT " + json.dumps(res, allow_nan=False))
`

type exprResult struct {
	Status string          `json:"status"`
	Ename  string          `json:"ename"`
	Evalue string          `json:"evalue"`
	JSON   json.RawMessage `json:"json"`
	Mimes  []string        `json:"mimes"`
}

type harnessResult struct {
	PandasBeforeBoot bool     `json:"pandas_before_boot"`
	BootOK           bool     `json:"boot_ok"`
	BootError        string   `json:"boot_error"`
	NewPublicNames   []string `json:"new_public_names"`
	NewNames         []string `json:"new_names"`
	InSysModules     bool     `json:"in_sys_modules"`
	ImportOK         bool     `json:"import_ok"`
	TableSchema      bool     `json:"table_schema"`
	MaxRows          int      `json:"max_rows"`
	SafeNames        []string `json:"safe_names"`
	Jsonable         []struct {
		Value json.RawMessage `json:"value"`
		Type  string          `json:"type"`
	} `json:"jsonable"`
	SetupOK           bool                `json:"setup_ok"`
	Variables         exprResult          `json:"variables"`
	Load              exprResult          `json:"load"`
	Namespace         map[string]*nsEntry `json:"namespace"`
	DfIsDf1           bool                `json:"df_is_df1"`
	Df1IsSafe         bool                `json:"df1_is_safe"`
	AvailableDatasets int                 `json:"available_datasets"`
}

type nsEntry struct {
	Type  string `json:"type"`
	Shape []int  `json:"shape"`
	Nulls *int   `json:"nulls"`
}

type dataset struct {
	Name *string `json:"name,omitempty"`
	Data any     `json:"data"`
}

func strp(s string) *string { return &s }

func runHarness(t *testing.T, dir string, in any) harnessResult {
	t.Helper()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is needed to test the bootstrap in IPython: %v", python, err)
	}
	stdin, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", pythonHarness)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	// A private IPython profile dir keeps the test out of $HOME.
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+t.TempDir(), "PYTHONIOENCODING=utf-8", "MPLBACKEND=Agg")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if strings.Contains(stdout.String(), "KGNOIPYTHON") {
		t.Fatalf("%s lacks IPython, which this test needs (install ipython, pandas and numpy for it, e.g. apt-get install python3-ipython python3-pandas): %s", python, stdout.String())
	}
	if err != nil {
		t.Fatalf("python harness: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var line string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, "KGRESULT "); ok {
			line = rest
		}
	}
	if line == "" {
		t.Fatalf("python harness printed no result\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	var res harnessResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("harness result %q: %v", line, err)
	}
	return res
}

func TestBootstrapInIPython(t *testing.T) {
	for _, preimport := range []bool{false, true} {
		name := "pandas imported after bootstrap"
		if preimport {
			name = "pandas imported before bootstrap"
		}
		t.Run(name, func(t *testing.T) {
			testBootstrapInIPython(t, preimport)
		})
	}
}

func testBootstrapInIPython(t *testing.T, preimport bool) {
	safeNames := []struct {
		name string
		i    int
		want string
	}{
		{"Sales Data-2024", 0, "sales_data_2024"},
		{"2nd", 0, "dataset_2nd"},
		{"Données 1", 0, "données_1"},
		{"", 0, "dataset_1"},
		{"", 4, "dataset_5"},
		{"!!!", 2, "dataset_3"},
		{"already_ok", 9, "already_ok"},
		{"  Mixed Case  ", 0, "__mixed_case__"},
	}
	jsonable := []struct {
		expr  string
		value string // JSON
		typ   string
	}{
		{"float('nan')", "null", "NoneType"},
		{"float('inf')", "null", "NoneType"},
		{"-float('inf')", "null", "NoneType"},
		{"1.5", "1.5", "float"},
		{"np.int64(7)", "7", "int"},
		{"np.float64('nan')", "null", "NoneType"},
		{"np.float32(0.5)", "0.5", "float"},
		{"np.bool_(True)", "true", "bool"},
		{"np.array([1, 2])", "[1,2]", "list"},
		{"pd.Timestamp('2024-01-02 03:04:05')", `"2024-01-02T03:04:05"`, "str"},
		{"pd.Timedelta('1h')", `"0 days 01:00:00"`, "str"},
		{"pd.NA", "null", "NoneType"},
		{"datetime.date(2024, 2, 29)", `"2024-02-29"`, "str"},
		{"{1: float('nan'), 'k': (1, None)}", `{"1":null,"k":[1,null]}`, "dict"},
		{"__import__('decimal').Decimal('2.5')", "2.5", "float"},
	}

	// A struct keeps the column order (region, amount) that a map would sort.
	type saleRow struct {
		Region *string  `json:"region"`
		Amount *float64 `json:"amount"`
	}
	amount := func(f float64) *float64 { return &f }
	sales := []saleRow{
		{Region: strp("Nord"), Amount: amount(1.5)},
		{}, // nulls
		{Region: strp("Süd \"quoted\", 'x'\nnext"), Amount: amount(3)},
	}
	datasets := []dataset{
		{Name: strp("Sales Data-2024"), Data: sales},
		{Name: strp("Données 1"), Data: []map[string]any{{"x": 1}, {"x": 2}}},
		{Name: strp("it's \"q\"\nnew"), Data: []map[string]any{{"k": "v"}}},
		{Name: strp("a/b"), Data: []map[string]any{{"z": nil}}},
		{Name: strp(""), Data: []map[string]any{{"x": 1}}},
		{Name: strp("bad rows"), Data: "nope"},
		{Data: []map[string]any{{"y": 1}}},
		{Name: strp(".hidden"), Data: []map[string]any{{"h": true}}},
	}
	payload, err := json.Marshal(datasets)
	if err != nil {
		t.Fatal(err)
	}

	in := map[string]any{
		"preimport": preimport,
		"code":      Code(),
		"vars_expr": VariablesExpr(5, 200),
		"load_expr": LoadDatasetsExpr(payload),
		"expect_vars": []string{
			"df", "df1", "sales_data_2024", "df2", "données_1", "df3", "its_qnew",
			"df4", "ab", "df5", "df6", "df7", "dataset_7", "df8", "hidden",
		},
	}
	var pairs [][2]any
	for _, s := range safeNames {
		pairs = append(pairs, [2]any{s.name, s.i})
	}
	in["safe_names"] = pairs
	var exprs []string
	for _, j := range jsonable {
		exprs = append(exprs, j.expr)
	}
	in["jsonable"] = exprs

	dir := t.TempDir()
	res := runHarness(t, dir, in)

	// The bootstrap itself.
	if res.PandasBeforeBoot != preimport {
		t.Fatalf("pandas imported before the bootstrap = %v, want %v (the hook path would not be tested)", res.PandasBeforeBoot, preimport)
	}
	if !res.BootOK {
		t.Fatalf("bootstrap cell failed: %s", res.BootError)
	}
	if !res.InSysModules {
		t.Error("_kernelgate is not in sys.modules after the bootstrap")
	}
	if len(res.NewPublicNames) != 0 {
		t.Errorf("bootstrap left public names in the user namespace: %q", res.NewPublicNames)
	}
	for _, n := range res.NewNames {
		if n == "_kernelgate" || n == "_sys" || n == "_types" || n == "_kg" || n == "_KG_SOURCE" {
			t.Errorf("bootstrap left %q in the user namespace", n)
		}
	}
	if !res.ImportOK {
		t.Fatal("import pandas/numpy failed after the bootstrap")
	}
	if !res.TableSchema {
		t.Error("pandas display.html.table_schema is not True")
	}
	if res.MaxRows != 60 {
		t.Errorf("pandas display.max_rows = %d, want 60", res.MaxRows)
	}

	// safe_name.
	var wantNames []string
	for _, s := range safeNames {
		wantNames = append(wantNames, s.want)
	}
	if diff := cmp.Diff(wantNames, res.SafeNames); diff != "" {
		t.Errorf("safe_name (-want +got):\n%s", diff)
	}

	// jsonable.
	if len(res.Jsonable) != len(jsonable) {
		t.Fatalf("jsonable: %d results for %d inputs", len(res.Jsonable), len(jsonable))
	}
	for i, j := range jsonable {
		got := res.Jsonable[i]
		if !jsonEqual(t, j.value, got.Value) || got.Type != j.typ {
			t.Errorf("jsonable(%s) = %s (%s), want %s (%s)", j.expr, got.Value, got.Type, j.value, j.typ)
		}
	}

	// variables().
	if !res.SetupOK {
		t.Fatal("setting up user variables failed")
	}
	if res.Variables.Status != "ok" {
		t.Fatalf("%s: %s %s: %s", VariablesExpr(5, 200), res.Variables.Status, res.Variables.Ename, res.Variables.Evalue)
	}
	var vars map[string]struct {
		Type      string            `json:"type"`
		Shape     []int             `json:"shape"`
		Columns   []string          `json:"columns"`
		Dtypes    map[string]string `json:"dtypes"`
		Data      json.RawMessage   `json:"data"`
		Truncated bool              `json:"truncated"`
		Value     json.RawMessage   `json:"value"`
	}
	if err := json.Unmarshal(res.Variables.JSON, &vars); err != nil {
		t.Fatalf("variables() JSON %s: %v", res.Variables.JSON, err)
	}
	var varNames []string
	for k := range vars {
		varNames = append(varNames, k)
	}
	sort.Strings(varNames)
	// Modules (pd, np, pandas), functions (f) and IPython's own names are
	// left out.
	wantVars := []string{"arr", "big", "nan", "small", "word"}
	if diff := cmp.Diff(wantVars, varNames); diff != "" {
		t.Errorf("variables() names (-want +got):\n%s", diff)
	}
	big := vars["big"]
	if big.Type != "DataFrame" || !cmp.Equal(big.Shape, []int{10000, 2}) || !big.Truncated {
		t.Errorf("variables()[big] = type %q shape %v truncated %v; want DataFrame [10000 2] true", big.Type, big.Shape, big.Truncated)
	}
	if diff := cmp.Diff([]string{"a", "b"}, big.Columns); diff != "" {
		t.Errorf("variables()[big] columns (-want +got):\n%s", diff)
	}
	var rows []map[string]any
	if err := json.Unmarshal(big.Data, &rows); err != nil {
		t.Fatalf("variables()[big].data %s: %v", big.Data, err)
	}
	if len(rows) != 5 {
		t.Errorf("variables()[big] has %d data rows, want 5 (max_rows)", len(rows))
	} else if rows[4]["a"] != float64(4) || rows[4]["b"] != "x" {
		t.Errorf("variables()[big] row 4 = %v, want a=4 b=x", rows[4])
	}
	small := vars["small"]
	if !jsonEqual(t, `[{"n":1.5},{"n":null}]`, small.Data) || small.Truncated {
		t.Errorf("variables()[small] data %s truncated %v; want NaN as null, not truncated", small.Data, small.Truncated)
	}
	if !jsonEqual(t, "null", vars["nan"].Value) {
		t.Errorf("variables()[nan] value %s, want null", vars["nan"].Value)
	}
	if !jsonEqual(t, `"hello"`, vars["word"].Value) {
		t.Errorf("variables()[word] value %s, want \"hello\"", vars["word"].Value)
	}
	if !jsonEqual(t, `[0,1,2]`, vars["arr"].Value) {
		t.Errorf("variables()[arr] value %s, want [0,1,2]", vars["arr"].Value)
	}

	// load_datasets_b64().
	if res.Load.Status != "ok" {
		t.Fatalf("load_datasets_b64: %s %s: %s", res.Load.Status, res.Load.Ename, res.Load.Evalue)
	}
	type loadedDS struct {
		Name     string  `json:"name"`
		Variable string  `json:"variable"`
		CSVFile  *string `json:"csv_file"`
		Shape    []int   `json:"shape"`
		Type     string  `json:"type"`
	}
	var load struct {
		Loaded []loadedDS `json:"loaded"`
		Errors []string   `json:"errors"`
	}
	if err := json.Unmarshal(res.Load.JSON, &load); err != nil {
		t.Fatalf("load JSON %s: %v", res.Load.JSON, err)
	}
	wantLoaded := []loadedDS{
		{Name: "Sales Data-2024", Variable: "sales_data_2024", CSVFile: strp("Sales Data-2024.csv"), Shape: []int{3, 2}, Type: "local"},
		{Name: "Données 1", Variable: "données_1", CSVFile: strp("Données 1.csv"), Shape: []int{2, 1}, Type: "local"},
		{Name: "it's \"q\"\nnew", Variable: "its_qnew", CSVFile: strp("it's \"q\"\nnew.csv"), Shape: []int{1, 1}, Type: "local"},
		{Name: "a/b", Variable: "ab", CSVFile: strp("dataset4.csv"), Shape: []int{1, 1}, Type: "local"},
		{Name: "Dataset 7", Variable: "dataset_7", CSVFile: strp("Dataset 7.csv"), Shape: []int{1, 1}, Type: "local"},
		{Name: ".hidden", Variable: "hidden", CSVFile: strp("dataset8.csv"), Shape: []int{1, 1}, Type: "local"},
	}
	if diff := cmp.Diff(wantLoaded, load.Loaded); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
	wantErrors := []string{
		"dataset 5: name must be a non-empty string",
		"dataset 'bad rows': data must be a list of row objects",
	}
	if diff := cmp.Diff(wantErrors, load.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if res.AvailableDatasets != len(wantLoaded) {
		t.Errorf("_available_datasets has %d entries, want %d", res.AvailableDatasets, len(wantLoaded))
	}

	// The namespace.
	ints := func(n int) *int { return &n }
	df := func(rows, cols, nulls int) *nsEntry {
		return &nsEntry{Type: "DataFrame", Shape: []int{rows, cols}, Nulls: ints(nulls)}
	}
	wantNS := map[string]*nsEntry{
		"df": df(3, 2, 2), "df1": df(3, 2, 2), "sales_data_2024": df(3, 2, 2),
		"df2": df(2, 1, 0), "données_1": df(2, 1, 0),
		"df3": df(1, 1, 0), "its_qnew": df(1, 1, 0),
		"df4": df(1, 1, 1), "ab": df(1, 1, 1),
		"df5": nil, "df6": nil, // the bad datasets
		"df7": df(1, 1, 0), "dataset_7": df(1, 1, 0),
		"df8": df(1, 1, 0), "hidden": df(1, 1, 0),
	}
	if diff := cmp.Diff(wantNS, res.Namespace); diff != "" {
		t.Errorf("user namespace after load (-want +got):\n%s", diff)
	}
	if !res.DfIsDf1 || !res.Df1IsSafe {
		t.Errorf("df, df1 and sales_data_2024 are not the same frame (df is df1: %v, df1 is sales_data_2024: %v)", res.DfIsDf1, res.Df1IsSafe)
	}

	// The CSV files in the working directory.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	wantFiles := []string{
		"Sales Data-2024.csv", "dataset1.csv", "sales_data_2024.csv",
		"Données 1.csv", "dataset2.csv", "données_1.csv",
		"it's \"q\"\nnew.csv", "dataset3.csv", "its_qnew.csv",
		"dataset4.csv", "ab.csv",
		"Dataset 7.csv", "dataset7.csv", "dataset_7.csv",
		"dataset8.csv", "hidden.csv",
	}
	sort.Strings(wantFiles)
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("files in the working directory (-want +got):\n%s", diff)
	}
	for _, name := range []string{"Sales Data-2024.csv", "dataset1.csv", "sales_data_2024.csv"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("open %s: %v", name, err)
			continue
		}
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := [][]string{
			{"region", "amount"},
			{"Nord", "1.5"},
			{"", ""},
			{"Süd \"quoted\", 'x'\nnext", "3.0"},
		}
		if diff := cmp.Diff(want, recs); diff != "" {
			t.Errorf("%s records (-want +got):\n%s", name, diff)
		}
	}
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, want string, got json.RawMessage) bool {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %q: %v", want, err)
	}
	if len(got) == 0 {
		return false
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("bad JSON %q: %v", got, err)
		return false
	}
	return cmp.Equal(w, g)
}

// A missing pandas date is null, not the string "NaT".
func TestBootstrapJSONableNaT(t *testing.T) {
	const script = `
import sys, json
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
assert ip.run_cell(sys.stdin.read(), silent=True, store_history=False).success
import pandas as pd
kg = sys.modules["_kernelgate"]
df = pd.DataFrame({"t": [pd.Timestamp("2024-01-01"), None]})
print(json.dumps([kg.jsonable(pd.NaT), kg.frame_preview(df, 5)["data"]]))
`
	cmd := exec.CommandContext(t.Context(), "/usr/bin/python3", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+t.TempDir())
	cmd.Stdin = strings.NewReader(Code())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	want := `[null, [{"t": "2024-01-01T00:00:00"}, {"t": null}]]`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("jsonable of NaT:\n got %s\nwant %s", got, want)
	}
}

func TestFlowStateExpr(t *testing.T) {
	tests := []struct {
		rows, vars int
		want       string
	}{
		{20, 200, "__import__('_kernelgate').flow_state(20, 200)"},
		{0, 0, "__import__('_kernelgate').flow_state(0, 0)"},
		{5, 3, "__import__('_kernelgate').flow_state(5, 3)"},
	}
	for _, tt := range tests {
		if got := FlowStateExpr(tt.rows, tt.vars); got != tt.want {
			t.Errorf("FlowStateExpr(%d, %d) = %q, want %q", tt.rows, tt.vars, got, tt.want)
		}
	}
	if !strings.Contains(Code(), "def flow_state(") {
		t.Error("Code() does not define flow_state")
	}
}

// flowStateHarness evaluates FlowStateExpr through user_expressions, as the
// gateway does, in a real IPython shell. It prints "KGRESULT <json>".
const flowStateHarness = `
import json, sys
from IPython.core.interactiveshell import InteractiveShell

cfg = json.load(sys.stdin)
ip = InteractiveShell.instance()
assert ip.run_cell(cfg["code"], silent=True, store_history=False).success
res = {}

def state(expr):
    out = ip.user_expressions({"e": expr})["e"]
    if out.get("status") != "ok":
        return {"status": out.get("status"), "ename": out.get("ename"), "evalue": out.get("evalue")}
    obj = out["data"].get("application/json")
    text = json.dumps(obj, allow_nan=False)  # what the kernel's packer does
    return {
        "status": "ok",
        "mimes": sorted(out["data"]),
        "json": obj,
        "bytes": len(text.encode("utf-8")),
        "var_names": list(obj["variables"]) if isinstance(obj, dict) else None,
        "frame_names": [f["name"] for f in obj["dataframe_variables"]] if isinstance(obj, dict) else None,
    }

r = ip.run_cell(cfg["setup"])
res["setup_ok"] = bool(r.success)
res["setup_error"] = "" if r.success else repr(r.error_before_exec or r.error_in_exec)
before = set(ip.user_ns)
res["state"] = state(cfg["expr"])
res["few"] = state(cfg["few_expr"])
res["new_names"] = sorted(set(ip.user_ns) - before)

ip.reset()
r = ip.run_cell(cfg["many_frames"])
res["many_ok"] = bool(r.success)
res["many"] = state(cfg["many_expr"])
print("KGRESULT " + json.dumps(res, allow_nan=False))
`

type flowStateResult struct {
	Status     string          `json:"status"`
	Ename      string          `json:"ename"`
	Evalue     string          `json:"evalue"`
	Mimes      []string        `json:"mimes"`
	JSON       json.RawMessage `json:"json"`
	Bytes      int             `json:"bytes"`
	VarNames   []string        `json:"var_names"`
	FrameNames []string        `json:"frame_names"`
}

type flowFrame struct {
	Name      string              `json:"name"`
	Data      []map[string]any    `json:"data"`
	Columns   []map[string]string `json:"columns"`
	Shape     []int               `json:"shape"`
	Truncated bool                `json:"truncated"`
}

type flowState struct {
	Variables          map[string]json.RawMessage `json:"variables"`
	DataFrameVariables []flowFrame                `json:"dataframe_variables"`
}

func (r flowStateResult) decode(t *testing.T, what string) flowState {
	t.Helper()
	if r.Status != "ok" {
		t.Fatalf("%s: %s %s: %s", what, r.Status, r.Ename, r.Evalue)
	}
	if !slices.Contains(r.Mimes, "application/json") {
		t.Errorf("%s: mimes %v, want application/json among them", what, r.Mimes)
	}
	var s flowState
	if err := json.Unmarshal(r.JSON, &s); err != nil {
		t.Fatalf("%s: JSON %s: %v", what, r.JSON, err)
	}
	return s
}

func TestFlowStateInIPython(t *testing.T) {
	setup := strings.Join([]string{
		"import os, math, datetime",
		"import pandas as pd",
		"import numpy as np",
		"big = pd.DataFrame({'a': range(10000), 'b': ['x'] * 10000})",
		"small = pd.DataFrame({'n': [1.5, float('nan')], 's': ['u', None]})",
		"nan = float('nan')",
		"inf = float('inf')",
		"i64 = np.int64(7)",
		"f32 = np.float32(0.5)",
		"word = 'hello'",
		"long = 'y' * 5000",
		"huge_list = list(range(10**6))",
		"small_list = [1, 2.5, None, 'x', float('nan'), np.int64(3)]",
		"tup = (1, 2)",
		"one_set = {3}",
		"nested = {'k': [1, {'z': float('inf')}], 2: 'two'}",
		"fat_list = ['z' * 1000] * 50",
		"many_dict = {i: i for i in range(101)}",
		"arr = np.arange(3, dtype=np.int64)",
		"big_arr = np.zeros((100, 100))",
		"ser = pd.Series(range(50), name='s')",
		"when = datetime.date(2024, 2, 29)",
		"bigint = 10**5000",
		"class Thing:\n    def __repr__(self):\n        return 'Thing()'",
		"thing = Thing()",
		"class Bad:\n    def __repr__(self):\n        raise RuntimeError('no repr')",
		"bad = Bad()",
		"def f():\n    pass",
		"alias = big",
		"fat_cells = pd.DataFrame({'t': ['w' * 100000] * 5, 'n': range(5)})",
	}, "\n")
	in := map[string]any{
		"code":        Code(),
		"setup":       setup,
		"expr":        FlowStateExpr(5, 200),
		"few_expr":    FlowStateExpr(5, 3),
		"many_frames": "import numpy as np, pandas as pd\nfor i in range(10):\n    globals()['df%d' % i] = pd.DataFrame({'a': np.arange(10000), 'b': np.random.rand(10000)})\ndel i",
		"many_expr":   FlowStateExpr(20, 200),
	}
	stdin, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", flowStateHarness)
	cmd.Dir = t.TempDir()
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+t.TempDir(), "PYTHONIOENCODING=utf-8", "MPLBACKEND=Agg")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python harness: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var line string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, "KGRESULT "); ok {
			line = rest
		}
	}
	var res struct {
		SetupOK    bool            `json:"setup_ok"`
		SetupError string          `json:"setup_error"`
		State      flowStateResult `json:"state"`
		Few        flowStateResult `json:"few"`
		NewNames   []string        `json:"new_names"`
		ManyOK     bool            `json:"many_ok"`
		Many       flowStateResult `json:"many"`
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("harness result %q: %v\nstdout:\n%s\nstderr:\n%s", line, err, stdout.String(), stderr.String())
	}
	if !res.SetupOK {
		t.Fatalf("setup cell failed: %s", res.SetupError)
	}
	if len(res.NewNames) != 0 {
		t.Errorf("flow_state added names to the user namespace: %v", res.NewNames)
	}

	st := res.State.decode(t, "flow_state(5, 200)")
	// Namespace order; modules (os, math, datetime, pd, np), classes (Thing,
	// Bad) and functions (f) are left out, and so are IPython's own names.
	wantNames := []string{
		"big", "small", "nan", "inf", "i64", "f32", "word", "long", "huge_list",
		"small_list", "tup", "one_set", "nested", "fat_list", "many_dict", "arr",
		"big_arr", "ser", "when", "bigint", "thing", "bad", "alias", "fat_cells",
	}
	if diff := cmp.Diff(wantNames, res.State.VarNames); diff != "" {
		t.Errorf("variables names (-want +got):\n%s", diff)
	}
	wantValues := map[string]string{
		"small":      `{"type":"DataFrame","shape":[2,2],"columns":["n","s"],"data":[{"n":1.5,"s":"u"},{"n":null,"s":null}],"truncated":false}`,
		"nan":        `null`,
		"inf":        `null`,
		"i64":        `7`,
		"f32":        `0.5`,
		"word":       `"hello"`,
		"long":       `"` + strings.Repeat("y", 1000) + `"`,
		"huge_list":  `{"type":"list","length":1000000,"truncated":true}`,
		"small_list": `[1,2.5,null,"x",null,3]`,
		"tup":        `[1,2]`,
		"one_set":    `[3]`,
		"nested":     `{"k":[1,{"z":null}],"2":"two"}`,
		"fat_list":   `{"type":"list","length":50,"truncated":true}`,
		"many_dict":  `{"type":"dict","length":101,"truncated":true}`,
		"arr":        `[0,1,2]`,
		"big_arr":    `{"type":"ndarray","shape":[100,100],"dtype":"float64","truncated":true}`,
		"ser":        `{"type":"Series","shape":[50],"dtype":"int64","data":[0,1,2,3,4],"truncated":true}`,
		"when":       `"2024-02-29"`,
		"bigint":     `{"type":"int","bits":16610,"truncated":true}`,
		"thing":      `{"type":"Thing","repr":"Thing()"}`,
		"bad":        `{"type":"Bad","error":"RuntimeError: no repr"}`,
		// 500 KB of cells: the preview keeps its shape and columns, not its rows.
		"fat_cells": `{"type":"DataFrame","shape":[5,2],"columns":["t","n"],"data":[],"truncated":true}`,
	}
	for name, want := range wantValues {
		if got := st.Variables[name]; !jsonEqual(t, want, got) {
			t.Errorf("variables[%s] = %s, want %s", name, got, want)
		}
	}
	for _, name := range []string{"big", "alias"} {
		var df struct {
			Type      string           `json:"type"`
			Shape     []int            `json:"shape"`
			Columns   []string         `json:"columns"`
			Data      []map[string]any `json:"data"`
			Truncated bool             `json:"truncated"`
		}
		if err := json.Unmarshal(st.Variables[name], &df); err != nil {
			t.Fatalf("variables[%s] = %s: %v", name, st.Variables[name], err)
		}
		if df.Type != "DataFrame" || !cmp.Equal(df.Shape, []int{10000, 2}) || len(df.Data) != 5 || !df.Truncated ||
			!cmp.Equal(df.Columns, []string{"a", "b"}) {
			t.Errorf("variables[%s] = %s, want a DataFrame of shape [10000 2], columns [a b], 5 records, truncated", name, st.Variables[name])
		}
	}

	cols := func(names ...string) []map[string]string {
		var out []map[string]string
		for _, n := range names {
			out = append(out, map[string]string{"key": n, "label": n})
		}
		return out
	}
	bigRows := func() []map[string]any {
		var rows []map[string]any
		for i := range 5 {
			rows = append(rows, map[string]any{"a": float64(i), "b": "x"})
		}
		return rows
	}
	wantFrames := []flowFrame{
		{Name: "big", Data: bigRows(), Columns: cols("a", "b"), Shape: []int{10000, 2}, Truncated: true},
		{Name: "small", Data: []map[string]any{{"n": 1.5, "s": "u"}, {"n": nil, "s": nil}}, Columns: cols("n", "s"), Shape: []int{2, 2}},
		{Name: "alias", Data: bigRows(), Columns: cols("a", "b"), Shape: []int{10000, 2}, Truncated: true},
		{Name: "fat_cells", Data: []map[string]any{}, Columns: cols("t", "n"), Shape: []int{5, 2}, Truncated: true},
	}
	if diff := cmp.Diff(wantFrames, st.DataFrameVariables); diff != "" {
		t.Errorf("dataframe_variables (-want +got):\n%s", diff)
	}
	if res.State.Bytes > 50_000 {
		t.Errorf("flow_state(5, 200) is %d bytes with a 10^6-item list, a 10000-row frame and 500 KB of cells; want it small", res.State.Bytes)
	}

	// max_vars caps both lists.
	res.Few.decode(t, "flow_state(5, 3)")
	if diff := cmp.Diff([]string{"big", "small", "nan"}, res.Few.VarNames); diff != "" {
		t.Errorf("flow_state(5, 3) variables (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"big", "small", "alias"}, res.Few.FrameNames); diff != "" {
		t.Errorf("flow_state(5, 3) dataframe_variables (-want +got):\n%s", diff)
	}

	// Ten frames of 10,000 rows: every later cell's final message carries
	// this, so it must stay small (the AdeloopFlow backend sent 478 KB for one).
	if !res.ManyOK {
		t.Fatal("creating ten DataFrames failed")
	}
	many := res.Many.decode(t, "flow_state(20, 200) with ten frames")
	if len(many.DataFrameVariables) != 10 {
		t.Fatalf("%d dataframe_variables, want 10", len(many.DataFrameVariables))
	}
	for _, f := range many.DataFrameVariables {
		if len(f.Data) != 20 || !f.Truncated || !cmp.Equal(f.Shape, []int{10000, 2}) {
			t.Errorf("frame %s: %d records, truncated %v, shape %v; want 20, true, [10000 2]", f.Name, len(f.Data), f.Truncated, f.Shape)
		}
	}
	if res.Many.Bytes >= 200_000 {
		t.Errorf("flow_state for ten 10000-row frames is %d bytes, want < 200 KB", res.Many.Bytes)
	}
	t.Logf("flow_state sizes: mixed namespace %d B, ten 10000-row frames %d B", res.State.Bytes, res.Many.Bytes)
}
