"""fastjsonschema's generated source, trimmed to what deciding needs.

The hub reads only fastjsonschema's verdict: a rejection is explained by
another engine (explain.py), so the messages fastjsonschema builds are never
read. Two parts of its code still pay for them:

- every call into a `$ref`'d function (one per item of an array of
  `$ref`'d objects) builds that item's path for messages, with
  `"...[{x}]".format(**locals())` on the success path: a dict of every
  local variable per item, a quarter of the validation time of a typical
  answer;
- every `raise` carries the message, the value, the path and, with
  detailed exceptions, a copy of the schema as a literal: most of the
  generated source, compiled and kept in memory for every schema of the
  catalogue.

So calls between generated functions pass no path, and every `raise`
keeps its exception class with an empty message. The checks themselves
are untouched.
"""

from __future__ import annotations

import ast
import types


class _Trim(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        # validate_x(data, custom_formats, name_prefix): the generated functions' calls to each other
        if isinstance(node.func, ast.Name) and node.func.id.startswith("validate") and len(node.args) == 3:
            node.args[2] = ast.Constant(None)
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        if isinstance(node.exc, ast.Call):
            node.exc = ast.Call(node.exc.func, [ast.Constant("")], [])
        return node


def compile_trimmed(source: str, filename: str = "<apihub schema>") -> types.CodeType:
    """The code object of fastjsonschema's `source`, trimmed."""
    tree = _Trim().visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")
