"""The reference for kiln's calculator: nanochat's use_calculator (nanochat/engine.py at commit
92d63d4), its rules restated here and evaluated by Python's own eval, as nanochat does.

Rules (engine.py: use_calculator, eval_with_timeout):
  1. every comma is removed (inside string literals too);
  2. if every character is one of "0123456789*+-/.() ": refuse "**", else eval;
  3. otherwise every character must be a letter, digit, quote, parenthesis, '.', '_' or space,
     none of the dangerous words may occur (case-insensitive), and ".count(" must occur; then eval;
  eval runs with no builtins and a 3 s alarm; any exception gives None. The engine feeds
  str(result) to the model.

Usage: calculator_ref.py EXPRS.jsonl -> one JSON line per expression: [str(result) or null,
needs_bigint], where needs_bigint says that evaluating it made an int outside 64 bits (kiln's
ints stop there: a documented difference).
"""
import ast
import json
import signal
import sys
import warnings

DANGEROUS = ['__', 'import', 'exec', 'eval', 'compile', 'open', 'file', 'input', 'raw_input', 'globals',
             'locals', 'vars', 'dir', 'getattr', 'setattr', 'delattr', 'hasattr']


def _alarm(signum, frame):
    raise TimeoutError()


def eval_with_timeout(formula, max_time=3):
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max_time)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return eval(formula, {"__builtins__": {}}, {})
    except Exception:
        return None
    finally:
        signal.alarm(0)


def use_calculator(expr):
    expr = expr.replace(",", "")
    if all(x in "0123456789*+-/.() " for x in expr):
        if "**" in expr:
            return None, expr
        return eval_with_timeout(expr), expr
    allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'\"()._ "
    if not all(x in allowed for x in expr):
        return None, expr
    if any(p in expr.lower() for p in DANGEROUS):
        return None, expr
    if '.count(' not in expr:
        return None, expr
    return eval_with_timeout(expr), expr


def needs_bigint(expr):
    """True when some int met while evaluating the arithmetic of expr lies outside int64."""
    big = False

    def ev(n):
        nonlocal big
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant):
            v = n.value
        elif isinstance(n, ast.UnaryOp):
            x = ev(n.operand)
            v = -x if isinstance(n.op, ast.USub) else +x
        elif isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                   ast.Div: lambda: a / b, ast.FloorDiv: lambda: a // b}
            v = ops[type(n.op)]()
        elif isinstance(n, ast.Tuple):
            v = ()
        else:
            raise ValueError(type(n).__name__)
        if type(v) is int and not -2**63 <= v < 2**63:
            big = True
        return v

    try:
        ev(ast.parse(expr, mode="eval"))
    except Exception:
        pass
    return big


def main():
    with open(sys.argv[1]) as f:
        for line in f:
            result, stripped = use_calculator(json.loads(line))
            try:
                out = None if result is None else str(result)
            except ValueError:  # str() of an int over 4300 digits: nanochat's engine would raise here
                out = "<str() raised>"
            print(json.dumps([out, out is not None and needs_bigint(stripped)]))


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
