// @vitest-environment node
// Every string the dashboard shows goes through i18next: both catalogs hold the same keys, every key the
// code asks for exists, every health reason code the kernel and its bundled plugins send has a text, and no JSX
// text or user-facing attribute is a bare literal.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import en from "./en.json";
import ko from "./ko.json";

const SRC = fileURLToPath(new URL("..", import.meta.url));

function flatten(node: unknown, prefix = ""): Record<string, string> {
  if (typeof node === "string") return { [prefix]: node };
  return Object.entries(node as Record<string, unknown>).reduce<Record<string, string>>(
    (all, [k, v]) => ({ ...all, ...flatten(v, prefix ? `${prefix}.${k}` : k) }), {});
}

const EN = flatten(en);
const KO = flatten(ko);
const PLURALS = ["_zero", "_one", "_two", "_few", "_many", "_other"];

function exists(catalog: Record<string, string>, key: string): boolean {
  return key in catalog || PLURALS.some((suffix) => key + suffix in catalog);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "test" ? [] : sourceFiles(path);
    return /\.tsx?$/.test(name) && !/\.test\.tsx?$/.test(name) ? [path] : [];
  });
}

/** Attributes and column fields a user reads: a literal with letters there bypasses the catalogs. */
const VISIBLE_ATTRIBUTES = new Set(["label", "title", "placeholder", "aria-label", "emptyText", "what", "caption",
                                    "helperText", "alt"]);
const VISIBLE_FIELDS = new Set(["header", "title", "message"]);
const LETTERS = /\p{L}/u;
/** Text that is not words: product and protocol names shown as they are. */
const UNTRANSLATABLE = new Set(["NeuroHub MES", "LOT", "OEE", "ID"]);

interface Finding {
  file: string;
  line: number;
  text: string;
}

/** A literal that starts with a catalog section ("nav.", "login." …) names a key, wherever it is kept. */
const SECTIONS = new Set(Object.keys(en));
const KEY_LIKE = /^([a-z]+)\.[A-Za-z0-9_.]+$/;

function scan() {
  const keys: Finding[] = [];
  const prefixes: Finding[] = [];
  const literals: Finding[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, "utf8");
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true,
                                       file.endsWith(".tsx") ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
    const at = (node: ts.Node, value: string): Finding => ({
      file: relative(SRC, file), line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: value,
    });
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node)) {
        const callee = node.expression;
        const name = ts.isIdentifier(callee) ? callee.text
          : ts.isPropertyAccessExpression(callee) ? callee.name.text : "";
        const first = node.arguments[0];
        if (name === "t" && first) {
          if (ts.isStringLiteral(first) || ts.isNoSubstitutionTemplateLiteral(first)) keys.push(at(first, first.text));
          else if (ts.isTemplateExpression(first)) prefixes.push(at(first, first.head.text));
        }
      }
      if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && KEY_LIKE.test(node.text) &&
          SECTIONS.has(node.text.split(".")[0]) && !keys.some((k) => k.file === relative(SRC, file) &&
                                                                  k.text === node.text)) {
        keys.push(at(node, node.text));
      }
      if (ts.isJsxText(node)) {
        const value = node.text.trim();
        if (value && LETTERS.test(value) && !UNTRANSLATABLE.has(value)) literals.push(at(node, value));
      }
      if (ts.isJsxAttribute(node) && node.initializer) {
        const name = node.name.getText(source);
        const init = node.initializer;
        const literal = ts.isStringLiteral(init) ? init.text
          : ts.isJsxExpression(init) && init.expression && ts.isStringLiteral(init.expression) ? init.expression.text
          : null;
        if (VISIBLE_ATTRIBUTES.has(name) && literal && LETTERS.test(literal) && !UNTRANSLATABLE.has(literal)) {
          literals.push(at(node, `${name}="${literal}"`));
        }
      }
      if (ts.isPropertyAssignment(node) && ts.isIdentifier(node.name) && VISIBLE_FIELDS.has(node.name.text) &&
          ts.isStringLiteral(node.initializer) && LETTERS.test(node.initializer.text) &&
          !UNTRANSLATABLE.has(node.initializer.text)) {
        literals.push(at(node, `${node.name.text}: "${node.initializer.text}"`));
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { keys, prefixes, literals };
}

/**
 * The health reason codes the kernel and the bundled plugins give (`Reason("PRINTER_SILENT", …)` in their Python,
 * the one way they make one), each with the file it is in. The dashboard words each by `health.reason.<code>`.
 */
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

function pythonFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      return name === "tests" || name.startsWith(".") || name === "__pycache__" || name.endsWith(".egg-info")
        ? [] : pythonFiles(path);
    }
    return name.endsWith(".py") ? [path] : [];
  });
}

function reasonCodes(): Finding[] {
  const roots = [join(REPO, "mes_kernel"), ...readdirSync(join(REPO, "plugins")).map((p) => join(REPO, "plugins", p))
    .filter((p) => statSync(p).isDirectory())];
  const codes: Finding[] = [];
  for (const file of roots.flatMap(pythonFiles)) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(/\bReason\(\s*"([A-Z][A-Z0-9_]*)"/g)) {
      codes.push({ file: relative(REPO, file), line: text.slice(0, match.index).split("\n").length, text: match[1] });
    }
  }
  return codes;
}

const found = scan();
const show = (items: Finding[]) => items.map((f) => `${f.file}:${f.line} ${f.text}`);

/** A plural form's suffix (i18next's: `key_one`, `key_other` …) and the key without it. */
const PLURAL_SUFFIX = /_(zero|one|two|few|many|other)$/;
const baseOf = (key: string) => key.replace(PLURAL_SUFFIX, "");
/** A key's text, for a plural key its `other` form (the one every language has). */
const textOf = (catalog: Record<string, string>, base: string) => catalog[base] ?? catalog[`${base}_other`];
const bases = (catalog: Record<string, string>) => [...new Set(Object.keys(catalog).map(baseOf))].sort();

describe("translations", () => {
  it("English and Korean catalogs hold the same keys (plural forms aside), none empty", () => {
    expect(bases(KO)).toEqual(bases(EN));
    expect(Object.entries({ ...EN }).filter(([, v]) => !v.trim())).toEqual([]);
    expect(Object.entries(KO).filter(([, v]) => !v.trim())).toEqual([]);
  });

  it("a plural key has exactly the forms its language's plural rules name (en: one, other; ko: other)", () => {
    const plural = new Set([...Object.keys(EN), ...Object.keys(KO)].filter((k) => PLURAL_SUFFIX.test(k)).map(baseOf));
    for (const [language, catalog] of [["en", EN], ["ko", KO]] as const) {
      const categories = [...new Intl.PluralRules(language).resolvedOptions().pluralCategories].sort();
      const wrong = [...plural].filter((base) => {
        const forms = Object.keys(catalog).filter((k) => baseOf(k) === base && k !== base)
          .map((k) => k.slice(base.length + 1)).sort();
        return JSON.stringify(forms) !== JSON.stringify(categories) || base in catalog;
      });
      expect(wrong, `${language} plural keys`).toEqual([]);
    }
  });

  it("a Korean string names the same placeholders as its English one", () => {
    const names = (s: string) => [...s.matchAll(/\{\{\s*(\w+)/g)].map((m) => m[1]).sort();
    const mismatched = bases(EN).filter((k) => JSON.stringify(names(textOf(EN, k))) !==
                                               JSON.stringify(names(textOf(KO, k))));
    expect(mismatched).toEqual([]);
  });

  it("the Korean catalog is translated, not a copy of the English one", () => {
    const words = (s: string) => s.replace(/\{\{[^}]*\}\}/g, "").trim();
    const copied = bases(EN).filter((k) => textOf(EN, k) === textOf(KO, k) && /[a-z]{3}/i.test(words(textOf(EN, k))) &&
                                           !UNTRANSLATABLE.has(words(textOf(EN, k))));
    expect(copied).toEqual([]);
  });

  it("every key the code asks for exists in both catalogs", () => {
    expect(found.keys.length).toBeGreaterThan(100); // the scanner sees the code
    expect(show(found.keys.filter((k) => !exists(EN, k.text) || !exists(KO, k.text)))).toEqual([]);
  });

  it("every dynamic key names a section both catalogs have", () => {
    const sections = (catalog: Record<string, string>, prefix: string) =>
      Object.keys(catalog).some((k) => k.startsWith(prefix));
    expect(show(found.prefixes.filter((p) => !p.text.endsWith(".") || !sections(EN, p.text) ||
                                             !sections(KO, p.text)))).toEqual([]);
  });

  it("every health reason code the kernel and the bundled plugins give has a text in both catalogs", () => {
    const codes = reasonCodes();
    // the scanner sees the kernel's and every bundled plugin's reasons
    expect(codes.length).toBeGreaterThan(50);
    for (const where of ["mes_kernel/health.py", "mes_kernel/machine_data/sink.py", "plugins/label_printer/",
                         "plugins/firmware_uploader/", "plugins/barcode_hid/", "plugins/modbus/", "plugins/mqtt/",
                         "plugins/opcua/"]) {
      expect(codes.some((c) => c.file.startsWith(where)), where).toBe(true);
    }
    const missing = codes.filter((c) => !exists(EN, `health.reason.${c.text}`) || !exists(KO, `health.reason.${c.text}`));
    expect(show(missing)).toEqual([]);
    // and no text for a code nobody gives (a code renamed in the Python, its text left behind)
    const given = new Set(codes.map((c) => c.text));
    expect(Object.keys(EN).filter((k) => k.startsWith("health.reason.") && !given.has(k.slice(14)))).toEqual([]);
  });

  it("no JSX text or user-facing attribute is a bare literal", () => {
    expect(show(found.literals)).toEqual([]);
  });
});
