#!/usr/bin/env python3
"""sql-audit.py - prove that ticket-milter never builds SQL from data.

Usage: sql-audit.py FILE.c...      (prints TAP; exit status 1 when a check fails)

Every SQL text that reaches SQLite must be fixed when the program is compiled;
values travel only as bound parameters. The audit reads the C sources
(comments removed, string literals kept) and checks:

 1. no sqlite3_mprintf / sqlite3_snprintf / sqlite3_str_* anywhere: SQLite's
    own formatting functions are how SQL text gets built at run time;
 2. every call of sqlite3_prepare*, sqlite3_exec - and of any function that
    passes one of its own parameters on to them (a wrapper such as store.c's
    exec_constant(), found by the audit itself, at any depth) - gets SQL that
    is provably constant:
      - string literals, and macros whose bodies are string literals (LIST_TAIL);
      - COND ? CONSTANT : CONSTANT;
      - NAME[i] where NAME is a file-scope `static const char *const` array
        whose every element is constant (statement_sql[]);
      - P->field where every assignment to P is NULL or &NAME[i], NAME a
        file-scope `static const` array whose initializer holds only literals,
        numbers and constant macros (migrations[]);
      - a local variable every assignment to which is constant, or exactly
        one of the ALLOWED_RUNTIME_SQL texts below;
    anything else fails as "cannot prove constant";
 3. no printf-style call (g_strdup_printf, g_string_append_printf,
    g_snprintf, snprintf, ...) has a format that starts like SQL, and no
    g_strconcat / g_string_append builds text from an SQL literal - unless
    the call is an allowed exception: SQL built this way and then passed
    through a path the data-flow check missed would still be caught here;
 4. no constant SQL compares with LIKE, GLOB, MATCH or REGEXP against a
    parameter, where '%' and '_' from a mail would act as wildcards (the
    customer lookups must use '=').

Allowed exceptions are listed by their exact text (white space collapsed)
with the reason; an exception no longer found in the sources is reported
(as a TAP comment) so that the list does not outlive the code.
"""
import re
import sys

# Exact text of the allowed run-time SQL, white space collapsed, and why.
ALLOWED_RUNTIME_SQL = {
    'g_strdup_printf ("PRAGMA user_version = %d", step->version)':
        "PRAGMA takes no bound parameters; the number is an int (%d) from the "
        "constant migrations[] table, never data",
}

SINKS = {  # function -> index of its SQL argument
    "sqlite3_prepare": 1, "sqlite3_prepare_v2": 1, "sqlite3_prepare_v3": 1,
    "sqlite3_prepare16": 1, "sqlite3_prepare16_v2": 1, "sqlite3_prepare16_v3": 1,
    "sqlite3_exec": 1,
}
FORBIDDEN = ["sqlite3_mprintf", "sqlite3_vmprintf", "sqlite3_snprintf", "sqlite3_vsnprintf",
             "sqlite3_str_new", "sqlite3_str_appendf", "sqlite3_str_vappendf",
             "sqlite3_str_appendall", "sqlite3_str_append"]
PRINTF_LIKE = {  # function -> index of its format argument
    "g_strdup_printf": 0, "g_strdup_vprintf": 0, "g_string_printf": 1,
    "g_string_append_printf": 1, "g_string_vprintf": 1, "g_string_append_vprintf": 1,
    "g_snprintf": 2, "g_vsnprintf": 2, "snprintf": 2, "vsnprintf": 2, "sprintf": 1,
    "vsprintf": 1, "asprintf": 1, "vasprintf": 1, "g_sprintf": 1,
}
CONCAT_LIKE = ["g_strconcat", "g_string_append", "g_string_prepend", "g_string_insert",
               "g_strjoin", "strcat", "strcpy", "g_strlcat", "g_strlcpy", "memcpy"]
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|"
                       r"BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE|WITH|VACUUM|ATTACH|"
                       r"DETACH|ANALYZE|REINDEX)\b", re.I)
WILDCARD_COMPARE = re.compile(r"\b(LIKE|GLOB|MATCH|REGEXP)\b", re.I)

TOKEN = re.compile(r'''
    (?P<ws>\s+)
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<char>'(?:\\.|[^'\\\n])*')
  | (?P<ident>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)
  | (?P<punct>->|\+\+|--|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^!=<>]=|\.\.\.|[^\s])
''', re.X)


class Tok:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind, text, line):
        self.kind, self.text, self.line = kind, text, line

    def __repr__(self):
        return self.text


def strip_comments(source):
    """The source with comments replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(source)
    while i < n:
        c = source[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i:j + 1])
            i = j + 1
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Source:
    """One C file: its tokens (preprocessor lines removed), object-like
    macros, and its top-level function definitions."""

    def __init__(self, path):
        self.path = path
        text = strip_comments(open(path, encoding="utf-8", errors="replace").read())
        text = text.replace("\\\n", "  ")  # join continued lines, keep line count roughly
        self.macros = {}
        lines = []
        for line in text.split("\n"):
            m = re.match(r"\s*#\s*define\s+([A-Za-z_]\w*)(?!\()\s*(.*)$", line)
            if m:
                self.macros[m.group(1)] = tokenize(m.group(2), 0)
            lines.append("" if line.lstrip().startswith("#") else line)
        self.tokens = tokenize("\n".join(lines), 1)
        self.functions = find_functions(self.tokens)

    def where(self, token):
        return "%s:%d" % (self.path.split("/")[-1], token.line)


def tokenize(text, first_line):
    tokens, line = [], first_line
    for m in TOKEN.finditer(text):
        kind = m.lastgroup
        if kind != "ws":
            tokens.append(Tok(kind, m.group(), line))
        line += m.group().count("\n")
    return tokens


def matching(tokens, i):
    """Index of the bracket closing the one at tokens[i]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    opening, closing, depth = tokens[i].text, pairs[tokens[i].text], 0
    for j in range(i, len(tokens)):
        if tokens[j].text == opening:
            depth += 1
        elif tokens[j].text == closing:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced %s at line %d" % (opening, tokens[i].line))


def split_top(tokens, separator):
    parts, depth, current = [], 0, []
    for t in tokens:
        if t.text in "([{":
            depth += 1
        elif t.text in ")]}":
            depth -= 1
        if depth == 0 and t.text == separator:
            parts.append(current)
            current = []
        else:
            current.append(t)
    parts.append(current)
    return parts


class Function:
    def __init__(self, name, params, body_start, body_end):
        self.name, self.params = name, params
        self.body_start, self.body_end = body_start, body_end


def find_functions(tokens):
    """Top-level definitions: NAME ( params ) { body }."""
    functions, depth, i = {}, 0, 0
    while i < len(tokens):
        t = tokens[i]
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
        elif (depth == 0 and t.kind == "ident" and i + 1 < len(tokens)
              and tokens[i + 1].text == "("):
            close = matching(tokens, i + 1)
            if close + 1 < len(tokens) and tokens[close + 1].text == "{":
                params = []
                for part in split_top(tokens[i + 2:close], ","):
                    idents = [p.text for p in part if p.kind == "ident"]
                    params.append(idents[-1] if idents else None)
                end = matching(tokens, close + 1)
                functions[t.text] = Function(t.text, params, close + 1, end)
                i = end + 1
                continue
        i += 1
    return functions


def normalized(tokens):
    text = ""
    for t in tokens:
        if text and (t.kind in ("ident", "number", "string") and
                     (text[-1].isalnum() or text[-1] in '_"')):
            text += " "
        elif text and t.text == "(" and text[-1].isalnum():
            text += " "
        elif text and t.kind == "string" and text[-1] == "(":
            pass
        elif text and t.text not in (")", ",", "]", "->", ".", "[", ";") and text[-1] in ",":
            text += " "
        text += t.text
    return text


class Audit:
    def __init__(self, paths):
        self.sources = [Source(p) for p in paths]
        self.results = []          # (ok, description, details)
        self.exceptions_used = set()
        self.constant_sql = []     # (where, text) of every SQL literal proved constant

    def record(self, ok, description, details=()):
        self.results.append((ok, description, list(details)))

    # ---- what is constant ----------------------------------------------

    def macro_constant(self, source, name, seen=()):
        body = source.macros.get(name)
        if body is None or name in seen:
            return False
        return all(t.kind == "string" or (t.kind == "ident" and
                                          self.macro_constant(source, t.text, seen + (name,)))
                   for t in body) and len(body) > 0

    def literal_text(self, source, tokens):
        out = ""
        for t in tokens:
            if t.kind == "string":
                out += t.text[1:-1]
            else:
                out += self.literal_text(source, source.macros[t.text])
        return out

    def file_scope_initializer(self, source, name):
        """Tokens of `static const ... NAME[...] = { ... };` at file scope, and
        whether the declaration is const all the way (pointers included)."""
        toks, depth = source.tokens, 0
        for i, t in enumerate(toks):
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1
            if depth != 0 or t.text != name or i + 1 >= len(toks):
                continue
            if toks[i + 1].text != "[" and toks[i + 1].text != "=":
                continue
            j = i
            while j > 0 and toks[j - 1].text not in (";", "}"):
                j -= 1
            declaration = [x.text for x in toks[j:i]]
            k = i + 1
            if toks[k].text == "[":
                k = matching(toks, k) + 1
            if toks[k].text != "=" or "static" not in declaration or "const" not in declaration:
                continue
            # char *const NAME[]: the pointers may not be reassigned either.
            if "*" in declaration and declaration[-1] != "const":
                continue
            if toks[k + 1].text != "{":
                return toks[k + 1:self.statement_end(toks, k + 1)]
            return toks[k + 2:matching(toks, k + 1)]
        return None

    @staticmethod
    def statement_end(toks, i):
        while toks[i].text != ";":
            i += 1
        return i

    def data_is_constant(self, source, tokens):
        """An initializer of literals, numbers, braces, designators and
        constant macros only."""
        for t in tokens:
            if t.kind in ("string", "number", "char"):
                continue
            if t.text in ("{", "}", ",", "[", "]", "=", ".", "-", "+"):
                continue
            if t.kind == "ident" and (self.macro_constant(source, t.text) or
                                      re.match(r"^[A-Z][A-Z0-9_]*$", t.text) or
                                      t.text in ("NULL", "TRUE", "FALSE")):
                continue
            return False
        return True

    def sql_of_array(self, source, name):
        """(all constant, [texts]) for the elements of a static const array."""
        init = self.file_scope_initializer(source, name)
        if init is None:
            return False, []
        texts = []
        for element in split_top(init, ","):
            if not element:
                continue
            if element[0].text == "[":           # designated: [X] = value
                element = element[matching(element, 0) + 2:]
            if not self.is_literal(source, element):
                return False, []
            texts.append(self.literal_text(source, element))
        return True, texts

    def is_literal(self, source, tokens):
        return bool(tokens) and all(
            t.kind == "string" or (t.kind == "ident" and self.macro_constant(source, t.text))
            for t in tokens)

    def assignments(self, source, function, name):
        """Right-hand sides assigned to NAME in FUNCTION (declarations too)."""
        toks, found = source.tokens, []
        for i in range(function.body_start, function.body_end):
            if toks[i].text == name and toks[i + 1].text == "=" and toks[i - 1].text not in (".", "->"):
                found.append(toks[i + 2:self.statement_end(toks, i + 2)])
            if toks[i].text == "&" and toks[i + 1].text == name:
                found.append(None)          # its address escapes: anything may be written
        return found

    def prove(self, source, function, expr, where):
        """(constant?, [reasons]) for an SQL argument; may record wrappers."""
        while len(expr) >= 2 and expr[0].text == "(" and matching(expr, 0) == len(expr) - 1:
            expr = expr[1:-1]
        if self.is_literal(source, expr):
            self.constant_sql.append((where, self.literal_text(source, expr)))
            return True, ["literal"]
        # COND ? A : B
        parts = split_top(expr, "?")
        if len(parts) == 2:
            branches = split_top(parts[1], ":")
            if len(branches) == 2:
                a = self.prove(source, function, branches[0], where)
                b = self.prove(source, function, branches[1], where)
                return a[0] is True and b[0] is True, a[1] + b[1]
        if len(expr) == 1 and expr[0].kind == "ident":
            name = expr[0].text
            if function is not None and name in function.params:
                return "param", [name]
            if function is not None:
                rhs = self.assignments(source, function, name)
                if rhs:
                    reasons = []
                    for value in rhs:
                        if value is None:
                            return False, ["the address of %s is taken" % name]
                        text = normalized(value)
                        if text in ALLOWED_RUNTIME_SQL:
                            self.exceptions_used.add(text)
                            reasons.append("allowed exception: %s" % text)
                            continue
                        if text == "NULL":
                            continue
                        ok, why = self.prove(source, function, value, where)
                        if ok is not True:
                            return False, ["%s = %s" % (name, text)] + why
                        reasons += why
                    return True, reasons
            ok, texts = self.sql_of_array(source, name)
            if ok:
                self.constant_sql += [(where, x) for x in texts]
                return True, ["constant %s" % name]
            return False, ["cannot prove %s constant" % name]
        # NAME [ index ]
        if len(expr) >= 4 and expr[0].kind == "ident" and expr[1].text == "[" \
                and matching(expr, 1) == len(expr) - 1:
            ok, texts = self.sql_of_array(source, expr[0].text)
            if ok:
                self.constant_sql += [(where, x) for x in texts]
                return True, ["element of constant array %s" % expr[0].text]
            return False, ["%s is no static const array of literals" % expr[0].text]
        # P->field or P.field, P pointing into a constant table
        if len(expr) == 3 and expr[0].kind == "ident" and expr[1].text in ("->", ".") \
                and expr[2].kind == "ident" and function is not None:
            rhs = self.assignments(source, function, expr[0].text)
            tables = set()
            for value in rhs:
                text = normalized(value) if value is not None else "&"
                m = re.match(r"^&\s*([A-Za-z_]\w*)\s*\[.*\]$", text)
                if text == "NULL":
                    continue
                if not m:
                    return False, ["%s = %s" % (expr[0].text, text)]
                tables.add(m.group(1))
            if not tables:
                what = "a parameter" if expr[0].text in function.params else "never assigned here"
                return False, ["%s: %s is %s, not a pointer into a constant table"
                               % (normalized(expr), expr[0].text, what)]
            for table in tables:
                init = self.file_scope_initializer(source, table)
                if init is None or not self.data_is_constant(source, init):
                    return False, ["%s is no static const table of constants" % table]
                for t in init:
                    if t.kind == "string":
                        self.constant_sql.append((where, t.text[1:-1]))
            return True, ["field of constant table %s" % ", ".join(sorted(tables))]
        return False, ["cannot prove constant: %s" % normalized(expr)]

    # ---- the checks -------------------------------------------------------

    def calls(self, source, name):
        """Calls of NAME inside function bodies: at file scope NAME ( is a
        definition or a prototype, never a call that runs SQL."""
        toks = source.tokens
        for i, t in enumerate(toks):
            if t.text == name and i + 1 < len(toks) and toks[i + 1].text == "(" \
                    and (i == 0 or toks[i - 1].text not in (".", "->")) \
                    and self.enclosing(source, i) is not None:
                close = matching(toks, i + 1)
                yield i, split_top(toks[i + 2:close], ",")

    @staticmethod
    def enclosing(source, index):
        for function in source.functions.values():
            if function.body_start < index < function.body_end:
                return function
        return None

    def check_forbidden(self):
        found = []
        for source in self.sources:
            for t in source.tokens:
                if t.text in FORBIDDEN:
                    found.append("%s: %s" % (source.where(t), t.text))
        self.record(not found, "no SQLite formatting functions (sqlite3_mprintf, sqlite3_str_*)",
                    found)

    def check_sinks(self):
        sinks = dict(SINKS)
        checked, pending = set(), list(sinks)
        while pending:
            sink = pending.pop(0)
            index = sinks[sink]
            for source in self.sources:
                for at, args in self.calls(source, sink):
                    key = (source.path, at)
                    if key in checked:
                        continue
                    checked.add(key)
                    where = source.where(source.tokens[at])
                    if index >= len(args):
                        self.record(False, "%s %s(): no SQL argument" % (where, sink))
                        continue
                    function = self.enclosing(source, at)
                    ok, why = self.prove(source, function, args[index], where)
                    if ok == "param":
                        wrapper = function.name
                        sinks[wrapper] = function.params.index(why[0])
                        pending.append(wrapper)
                        self.record(True, "%s %s() passes on the SQL parameter %s: %s() is "
                                    "audited as a wrapper" % (where, sink, why[0], wrapper))
                        continue
                    self.record(ok, "%s %s(): SQL %s" % (
                        where, sink, "is constant (%s)" % "; ".join(sorted(set(why)))
                        if ok else "is not provably constant"), [] if ok else why)

    def check_built_sql(self):
        found = []
        for source in self.sources:
            for name, index in PRINTF_LIKE.items():
                for at, args in self.calls(source, name):
                    if index < len(args) and self.is_literal(source, args[index]):
                        text = self.literal_text(source, args[index])
                        call = normalized(source.tokens[at:at + 2 + sum(len(a) + 1 for a in args)])
                        if SQL_START.match(text) and call not in ALLOWED_RUNTIME_SQL:
                            found.append("%s: %s" % (source.where(source.tokens[at]), call))
            for name in CONCAT_LIKE:
                for at, args in self.calls(source, name):
                    for arg in args:
                        if self.is_literal(source, arg) and \
                                SQL_START.match(self.literal_text(source, arg)):
                            found.append("%s: %s(...) with SQL text" % (
                                source.where(source.tokens[at]), name))
        self.record(not found, "no SQL text built with printf-style or concatenating calls",
                    found)

    def check_wildcards(self):
        found = []
        for where, text in self.constant_sql:
            if WILDCARD_COMPARE.search(text) and "?" in text:
                found.append("%s: %s" % (where, text))
        self.record(not found, "no LIKE/GLOB/MATCH/REGEXP against a parameter in %d SQL texts"
                    % len(set(t for _, t in self.constant_sql)), found)

    def run(self):
        self.check_forbidden()
        self.check_sinks()
        self.check_built_sql()
        self.check_wildcards()
        for number, (ok, description, details) in enumerate(self.results, 1):
            print("%sok %d - %s" % ("" if ok else "not ", number, description))
            for line in details:
                print("#   %s" % line)
        for text, reason in ALLOWED_RUNTIME_SQL.items():
            state = "used" if text in self.exceptions_used else "NOT FOUND (remove it?)"
            print("# allowed exception, %s: %s -- %s" % (state, text, reason))
        print("1..%d" % len(self.results))
        return 0 if all(ok for ok, _, _ in self.results) else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.stderr.write("usage: sql-audit.py FILE.c...\n")
        sys.exit(64)
    sys.exit(Audit(sys.argv[1:]).run())
