#include "compiler/ir/text.h"

#include <charconv>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace ppc::ir {

namespace {

std::string typed(const Value& v) { return v.name + ":" + dtype_name(v.dtype) + v.shape.str(); }

// Integral counts print as integers; any other value prints at the shortest
// precision that reads back to the same double (6 digits did not: 1.5e14 + 0.3
// printed as 1.5e+14, which reads back as an integer and prints differently).
std::string format_flops(double f) {
  if (f == std::floor(f) && std::fabs(f) < 1e15) return std::to_string(static_cast<long long>(f));
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f);
  return std::string(buf, res.ptr);
}

std::vector<std::string> split_ws(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream is(line);
  std::string tok;
  while (is >> tok) out.push_back(tok);
  return out;
}

// std::stoll/stod throw invalid_argument/out_of_range; the parser's contract
// is runtime_error "line N: ...", so convert strictly here.
int64_t parse_int(const std::string& s, int line) {
  size_t used = 0;
  try {
    int64_t v = std::stoll(s, &used);
    if (used == s.size()) return v;
  } catch (const std::logic_error&) {}
  throw std::runtime_error("line " + std::to_string(line) + ": bad integer '" + s + "'");
}

double parse_double(const std::string& s, int line) {
  size_t used = 0;
  try {
    double v = std::stod(s, &used);
    if (used == s.size()) return v;
  } catch (const std::logic_error&) {}
  throw std::runtime_error("line " + std::to_string(line) + ": bad number '" + s + "'");
}

Shape parse_shape(const std::string& s, int line) {
  if (s == "?") return Shape::unranked();
  if (s.size() < 2 || s.front() != '[' || s.back() != ']')
    throw std::runtime_error("line " + std::to_string(line) + ": bad shape '" + s + "'");
  Shape shape = Shape::of({});
  std::string body = s.substr(1, s.size() - 2);
  if (body.empty()) return shape;
  std::stringstream ss(body);
  std::string d;
  while (std::getline(ss, d, ',')) {
    if (d == "?")
      shape.dims.push_back(Dim::unknown());
    else if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0])))
      shape.dims.push_back(Dim::known(parse_int(d, line)));
    else if (!d.empty())
      shape.dims.push_back(Dim::symbolic(d));
    else
      throw std::runtime_error("line " + std::to_string(line) + ": empty dim in '" + s + "'");
  }
  return shape;
}

// "name:float32[a,4]" -> (name, dtype, shape)
void parse_typed(const std::string& tok, int line, std::string& name, DType& dtype, Shape& shape) {
  auto colon = tok.rfind(':');
  auto bracket = tok.find('[', colon == std::string::npos ? 0 : colon);
  if (colon == std::string::npos)
    throw std::runtime_error("line " + std::to_string(line) + ": expected name:type in '" + tok + "'");
  name = tok.substr(0, colon);
  if (name.empty()) throw std::runtime_error("line " + std::to_string(line) + ": empty value name in '" + tok + "'");
  std::string type = tok.substr(colon + 1, bracket == std::string::npos ? std::string::npos : bracket - colon - 1);
  // print_graph writes an unranked shape as "?" right after the dtype ("y:float32?").
  const bool unranked_mark = bracket == std::string::npos && !type.empty() && type.back() == '?';
  if (unranked_mark) type.pop_back();
  auto dt = dtype_from_name(type);
  if (!dt) throw std::runtime_error("line " + std::to_string(line) + ": unknown dtype '" + type + "'");
  dtype = *dt;
  shape = bracket == std::string::npos ? Shape::unranked() : parse_shape(tok.substr(bracket), line);
}

}  // namespace

std::string print_graph(const Graph& g) {
  std::ostringstream os;
  os << "graph " << (g.name.empty() ? "g" : g.name) << "\n";
  for (ValueId v : g.inputs) os << "input " << typed(g.values[v]) << "\n";
  for (const Param& p : g.params) os << "param " << typed(g.values[p.value]) << "\n";
  for (const Node& n : g.nodes) {
    os << "node " << n.name << " " << n.op;
    if (!n.module.empty()) os << " @" << n.module;
    if (n.flags & kNodeConstantSource) os << " const";
    if (n.flags & kNodeNondeterministic) os << " rand";
    if (n.flags & kNodeHasSubgraph) os << " subgraph";
    if (n.flops != 0.0) os << " flops=" << format_flops(n.flops);
    os << " :";
    for (ValueId v : n.inputs) os << " " << (v == kNone ? std::string("_") : g.values[v].name);
    os << " ->";
    for (ValueId v : n.outputs) os << " " << typed(g.values[v]);
    os << "\n";
  }
  for (ValueId v : g.outputs) os << "output " << g.values[v].name << "\n";
  return os.str();
}

Graph parse_graph(const std::string& text) {
  Graph g;
  std::istringstream is(text);
  std::string raw;
  int line = 0;
  auto fail = [&](const std::string& msg) { throw std::runtime_error("line " + std::to_string(line) + ": " + msg); };
  while (std::getline(is, raw)) {
    ++line;
    auto hash = raw.find('#');
    if (hash != std::string::npos) raw.resize(hash);
    auto toks = split_ws(raw);
    if (toks.empty()) continue;
    const std::string& kw = toks[0];
    if (kw == "graph") {
      if (toks.size() != 2) fail("expected 'graph NAME'");
      g.name = toks[1];
    } else if (kw == "input" || kw == "param") {
      if (toks.size() != 2) fail("expected '" + kw + " name:type'");
      std::string name;
      DType dt;
      Shape shape;
      parse_typed(toks[1], line, name, dt, shape);
      if (g.find_value(name) != kNone) fail("duplicate value '" + name + "'");
      if (kw == "input") {
        g.add_input(name, dt, shape);
      } else {
        // In double: a shape's product can pass int64's range (casting it would be undefined).
        const double bytes = shape.numel(1.0) * dtype_size(dt);
        if (!(bytes < 9.0e18)) fail("param '" + name + "' holds more than 9e18 bytes");
        g.add_param(name, dt, shape, static_cast<int64_t>(bytes));
      }
    } else if (kw == "node") {
      if (toks.size() < 4) fail("expected 'node NAME OP ... : inputs -> outputs'");
      Node n;
      n.name = toks[1];
      n.op = toks[2];
      size_t i = 3;
      for (; i < toks.size() && toks[i] != ":"; ++i) {
        const std::string& t = toks[i];
        if (t[0] == '@')
          n.module = t.substr(1);
        else if (t == "const")
          n.flags |= kNodeConstantSource;
        else if (t == "rand")
          n.flags |= kNodeNondeterministic;
        else if (t == "subgraph")
          n.flags |= kNodeHasSubgraph;
        else if (t.rfind("flops=", 0) == 0)
          n.flops = parse_double(t.substr(6), line);
        else
          fail("unexpected '" + t + "' in node header");
      }
      if (i == toks.size()) fail("missing ':' in node");
      for (++i; i < toks.size() && toks[i] != "->"; ++i) {
        if (toks[i] == "_") {
          n.inputs.push_back(kNone);
          continue;
        }
        ValueId v = g.find_value(toks[i]);
        if (v == kNone) fail("unknown value '" + toks[i] + "'");
        n.inputs.push_back(v);
      }
      if (i == toks.size()) fail("missing '->' in node");
      for (++i; i < toks.size(); ++i) {
        std::string name;
        DType dt;
        Shape shape;
        parse_typed(toks[i], line, name, dt, shape);
        if (g.find_value(name) != kNone) fail("value '" + name + "' defined twice");
        n.outputs.push_back(g.add_value(name, dt, shape));
      }
      if (g.find_node(n.name) != kNone) fail("duplicate node '" + n.name + "'");
      n.source_index = static_cast<int>(g.nodes.size());
      g.add_node(std::move(n));
    } else if (kw == "output") {
      if (toks.size() != 2) fail("expected 'output NAME'");
      ValueId v = g.find_value(toks[1]);
      if (v == kNone) fail("unknown value '" + toks[1] + "'");
      g.mark_output(v);
    } else {
      fail("unknown keyword '" + kw + "'");
    }
  }
  g.sort_topologically();
  return g;
}

}  // namespace ppc::ir
