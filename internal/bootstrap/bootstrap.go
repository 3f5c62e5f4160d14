// Package bootstrap ships the Python code kernelgate runs in every Python
// kernel before user code (fast stream flushing, inline PNG plots, pandas
// table schema, plotly as data) and the helper expressions the gateway calls
// afterwards. The helpers live in a module named _kernelgate that is kept out
// of the user's namespace, and they are called through silent executes and
// user_expressions, so they never touch the user's execution count or output.
package bootstrap

import (
	_ "embed"
	"encoding/base64"
	"fmt"
)

//go:embed kernelgate_boot.py
var code string

// Code is the bootstrap source, to run once per kernel incarnation as a
// silent execute_request.
func Code() string { return code }

// VariablesExpr is a user expression whose value (as application/json) is a
// bounded summary of the user's variables: DataFrames become row-capped
// previews with their shape.
func VariablesExpr(maxRows, maxItems int) string {
	return fmt.Sprintf("__import__('_kernelgate').variables(%d, %d)", maxRows, maxItems)
}

// LoadDatasetsExpr is a user expression that loads datasets (a JSON array of
// {name, data}) into the namespace and the working directory, and evaluates
// to {"loaded": [...], "errors": [...]}. The payload travels as base64 so no
// quoting of user data is ever needed.
func LoadDatasetsExpr(datasetsJSON []byte) string {
	return fmt.Sprintf("__import__('_kernelgate').load_datasets_b64('%s')",
		base64.StdEncoding.EncodeToString(datasetsJSON))
}

// FlowStateExpr is a user expression whose value (as application/json) is
// the state an AdeloopFlow final message carries:
//
//	{"variables": {name: value}, "dataframe_variables": [{"name", "data",
//	 "columns": [{"key", "label"}], "shape": [rows, cols], "truncated"}]}
//
// Variables are in the value style of the latest AdeloopFlow backend but
// bounded: small values as themselves, big containers and arrays as
// {"type", "length" or "shape", "truncated": true}, DataFrames and Series as
// previews of at most maxRows rows. At most maxVars variables and maxVars
// DataFrames are listed. NaN and infinities are null.
func FlowStateExpr(maxRows, maxVars int) string {
	return fmt.Sprintf("__import__('_kernelgate').flow_state(%d, %d)", maxRows, maxVars)
}

// SetVariablesExpr is a user expression that sets the names of a JSON
// object (a client's variableContext) in the user's namespace and evaluates
// to {"set": [...], "errors": [...]}.
func SetVariablesExpr(objectJSON []byte) string {
	return fmt.Sprintf("__import__('_kernelgate').set_variables_b64('%s')",
		base64.StdEncoding.EncodeToString(objectJSON))
}

// InputMarker is the type of the iopub message the bootstrap sends right
// before each input_request, after flushing the output printed before it.
const InputMarker = "kernelgate_input_marker"
