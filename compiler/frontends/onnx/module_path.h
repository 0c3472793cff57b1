// Module paths from what torch's ONNX exporters write: node names (the
// TorchScript-based exporter) or node metadata (the dynamo exporter).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ppc::onnx_frontend {

/// The scope segments of a torch-exported node name, without the final op
/// segment: "/layer1/layer1.0/conv1/Conv" -> {"layer1", "layer1.0", "conv1"}.
/// Names not starting with '/' (e.g. "Identity_3") have no scope.
std::vector<std::string> scope_segments(const std::string& node_name);

/// Dotted module path from scope segments, collapsing the exporter's repeated
/// prefixes ("layer1" + "layer1.0" -> "layer1.0") and dropping the `_N`
/// suffix torch adds when one module is called again ("embed_1" -> "embed")
/// when `known_scopes` (all "/"-joined scope prefixes in the graph) shows the
/// unsuffixed scope exists too.
///   "/layer0/lin/Gemm" -> "layer0.lin";  "/h.0/attn/qkv/MatMul" -> "h.0.attn.qkv";  "/Add" -> "".
std::string module_path(const std::vector<std::string>& segments, const std::set<std::string>& known_scopes);

/// All "/"-joined scope prefixes of the given node names ("layer1", "layer1/layer1.0", ...).
std::set<std::string> collect_scopes(const std::vector<std::string>& node_names);

/// The elements of a Python list of strings as `repr` writes it, the form of
/// the dynamo exporter's metadata values: "['', 'layer0', \"it's\"]" ->
/// {"", "layer0", "it's"}. nullopt when the text is not such a list.
std::optional<std::vector<std::string>> parse_python_str_list(const std::string& text);

/// Module path from the dynamo exporter's `pkg.torch.onnx.name_scopes`: the
/// scopes from the root module ('') down to the node's own FX name, so the
/// path is the element before the last, without the `@N` a module's repeated
/// calls may carry. ['', 'layer0', 'layer0.lin', 'linear'] -> "layer0.lin";
/// ['', 'add'] -> "".
std::string module_from_name_scopes(const std::vector<std::string>& scopes);

}  // namespace ppc::onnx_frontend
