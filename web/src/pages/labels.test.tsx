// The label-template page against a fake kernel over HTTP, and the real in-browser ZPL renderer.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import axios from "axios";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LabelTemplate, ZplInspection } from "../api/types";
import { declarations, fnDeclarations, guessType, nameForFn } from "../labels/TemplateUploadDialog";
import { hasCjk, renderArgs, renderZpl } from "../labels/zplRender";
import { startFakeKernel, type FakeKernel, type Seen } from "../test/fakeKernel";
import { loginAs, logoutLocally, useKernel } from "../test/session";
import { api } from "../store/auth";
import { LabelTemplatesPage } from "./LabelTemplatesPage";

/** The plant label the kernel's own tests use: a ^GF logo, ^CI28, Korean, Chinese and Japanese text. */
const PLANT_ZPL = readFileSync(join(process.cwd(), "..", "plugins", "label_printer", "tests", "labels",
                                    "plant_unit_label.zpl"), "utf8");
/** A 1×1 PNG, the server preview's stand-in. */
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
                        "base64");
const PNG_SIGNATURE = "data:image/png;base64,iVBORw0KGgo";

let kernel: FakeKernel;

function template(name: string, version = 1, extra: Partial<LabelTemplate> = {}): LabelTemplate {
  return { name, version, title: `${name} title`, description: "", width: 812, height: 406, dpi: 203,
           status: "active", source: "upload", created_by: "pm", created_at: "2026-11-26T05:00:00Z", retired_at: null,
           fields: [{ name: "serial_number", type: "serial_number", required: true, max_length: 20, description: "",
                      fn: 2 },
                    { name: "product", type: "text", required: true, max_length: 30, description: "", fn: null }],
           ...extra };
}

const SIMPLE_ZPL = "^XA^PW400^LL200^FO20,20^GB360,160,4^FS^FO40,60^A0N,40,40^FDSN-0000001^FS^XZ";

/** The kernel's template routes for `plant_unit` (versions 2 and 1) and the unit label. */
function serveTemplates(zpl = PLANT_ZPL) {
  const plant2 = template("plant_unit", 2);
  const plant1 = template("plant_unit", 1, { status: "active", title: "older" });
  kernel.route("GET", "/api/v1/labels/templates", (req) => ({
    body: req.query.get("include_retired") ? [plant2, template("old_box", 3, { status: "retired" })] : [plant2,
      template("unit_label")],
  }));
  kernel.route("GET", "/api/v1/labels/templates/plant_unit/versions", () => ({ body: [plant2, plant1] }));
  kernel.route("GET", "/api/v1/labels/templates/plant_unit", (req) => ({
    body: { ...(req.query.get("version") === "1" ? plant1 : plant2), zpl },
  }));
  kernel.route("POST", "/api/v1/labels/preview", (req) => {
    const body = req.body as { format?: string };
    return body.format === "zpl"
      ? { raw: zpl, headers: { "content-type": "text/plain; charset=utf-8" } }
      : { raw: PNG, headers: { "content-type": "image/png" } };
  });
}

/** What the kernel reads in PLANT_ZPL (its own test, test_inspect_answers_the_fn_fields_…, asserts the same). */
const PLANT_INSPECTION: ZplInspection = {
  fn_fields: [{ fn: 1, prompt: null, default: "LOT-PLACEHOLDER", uses: 1, kinds: ["text"] },
              { fn: 2, prompt: null, default: null, uses: 2, kinds: ["text", "code128"] }],
  placeholders: ["product", "gtin", "lot_number", "serial_number", "ean"],
  width: 812, height: 406, graphics: 1, warnings: [],
};

/** The kernel's inspection route answering `answer` (and recording what it was asked). */
function serveInspection(answer: ZplInspection | { status: number; body: unknown }) {
  kernel.route("POST", "/api/v1/labels/templates/inspect", () =>
    ("status" in answer ? answer : { body: answer }));
}

/** A renderer that answers at once, for tests about the page rather than the drawing. */
const quickRender = async (zpl: string) => `${PNG_SIGNATURE}${zpl.length}`;

beforeEach(async () => {
  kernel = await startFakeKernel();
  useKernel(kernel);
});

afterEach(async () => {
  logoutLocally();
  await kernel.close();
});

describe("LabelTemplatesPage", () => {
  it("lists templates with versions and fields; a viewer sees previews but may not upload or retire", async () => {
    loginAs("viewer");
    serveTemplates();
    render(<LabelTemplatesPage render={quickRender} />);
    const list = await screen.findByRole("table", { name: "Templates" });
    const row = (await within(list).findByRole("button", { name: "plant_unit" })).closest("tr") as HTMLElement;
    expect(row).toHaveTextContent("v2");
    expect(row).toHaveTextContent("serial_number, product");
    expect(screen.queryByRole("button", { name: "Upload template" })).toBeNull();

    await userEvent.setup().click(within(list).getByRole("button", { name: "plant_unit" }));
    const detail = await screen.findByRole("region", { name: "Template plant_unit" });
    expect(await within(detail).findByTestId("preview-server")).toHaveAttribute("src",
      `data:image/png;base64,${PNG.toString("base64")}`);
    expect(await within(detail).findByTestId("preview-browser")).toHaveAttribute("src",
      `${PNG_SIGNATURE}${PLANT_ZPL.length}`);
    // the plant label has CJK text, which the in-browser renderer cannot draw: the page says so
    expect(within(detail).getByTestId("cjk-note")).toHaveTextContent(/Korean, Chinese or Japanese/);
    expect(within(detail).getByRole("cell", { name: "^FN2" })).toBeInTheDocument();
    expect(within(detail).getByRole("cell", { name: "{{product}}" })).toBeInTheDocument();
    expect(within(detail).getByTestId("zpl-source")).toHaveTextContent("^GFA,256,256,8");
    expect(within(detail).queryByTestId("retire")).toBeNull();
    // both previews ask for the same version filled with sample values; one as PNG, one as ZPL
    const previews = kernel.seen.filter((s) => s.path === "/api/v1/labels/preview").map((s) => s.body);
    expect(previews).toEqual(expect.arrayContaining([
      { template: "plant_unit", template_version: 2, sample: true },
      { template: "plant_unit", template_version: 2, sample: true, format: "zpl" },
    ]));
  });

  it("shows an older version when it is chosen", async () => {
    loginAs("viewer");
    serveTemplates();
    render(<LabelTemplatesPage render={quickRender} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "plant_unit" }));
    const detail = await screen.findByRole("region", { name: "Template plant_unit" });
    await within(detail).findByTestId("preview-browser");
    await user.click(within(detail).getByRole("combobox", { name: "Version" }));
    await user.click(await screen.findByRole("option", { name: "v1 · active" }));
    await within(detail).findByText("older");
    await waitFor(() => expect(kernel.seen.some((s) => s.path === "/api/v1/labels/preview" &&
      (s.body as { template_version: number }).template_version === 1)).toBe(true));
  });

  it("uploads pasted ZPL with the fields its placeholders name, and shows the kernel's warnings", async () => {
    loginAs("production_manager");
    serveTemplates();
    let sent: Seen | undefined;
    kernel.route("POST", "/api/v1/labels/templates", (req) => {
      sent = req;
      return { status: 201, body: { ...template("box_label", 1), warnings: ["^PQ left out: the print decides"] } };
    });
    serveInspection({ fn_fields: [], placeholders: ["lot_number", "note"], width: null, height: null, graphics: 0,
                      warnings: [] });
    render(<LabelTemplatesPage render={quickRender} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Upload template" }));
    const dialog = await screen.findByRole("dialog");
    await user.type(within(dialog).getByRole("textbox", { name: "Name" }), "box_label");
    const zpl = within(dialog).getByRole("textbox", { name: "ZPL" });
    await user.click(zpl);
    await user.paste("^XA^FO10,10^A0N,30,30^FD{{lot_number}} {{note}}^FS^PQ2^XZ");
    await user.tab(); // leaving the text asks the kernel what it reads: rows for its placeholders
    await within(dialog).findByTestId("field-row-1");
    await user.click(within(within(dialog).getByTestId("field-row-1")).getByRole("checkbox", { name: "Required" }));
    await user.click(within(dialog).getByRole("button", { name: "Upload" }));

    const result = await screen.findByTestId("upload-result");
    expect(result).toHaveTextContent("Template box_label is now version 1.");
    expect(within(result).getByTestId("upload-warnings")).toHaveTextContent("^PQ left out: the print decides");
    expect(sent?.body).toEqual({
      name: "box_label", title: "", zpl: "^XA^FO10,10^A0N,30,30^FD{{lot_number}} {{note}}^FS^PQ2^XZ",
      fields: [{ name: "lot_number", type: "lot_number", required: true, fn: null, max_length: 40 },
               { name: "note", type: "text", required: false, fn: null, max_length: 40 }],
    });
    expect(sent?.authorization).toBe("Bearer access-production_manager");
  });

  it("sends a picked file as it is (multipart), with the declared fields", async () => {
    // jsdom's FormData cannot go through Node's HTTP client: this one request is caught at the client's
    // adapter. The e2e test uploads the same file through Chromium to a real kernel.
    loginAs("production_manager");
    serveTemplates();
    serveInspection(PLANT_INSPECTION);
    let form: FormData | undefined;
    const adapter = api.http.defaults.adapter;
    api.http.defaults.adapter = async (config) => {
      if (config.method !== "post" || !(config.data instanceof FormData)) {
        return (axios.getAdapter(adapter))(config);
      }
      form = config.data;
      return { data: { ...template("plant_unit", 3), warnings: [] }, status: 201, statusText: "Created",
               headers: {}, config };
    };
    render(<LabelTemplatesPage render={quickRender} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Upload template" }));
    const dialog = await screen.findByRole("dialog");
    await user.upload(within(dialog).getByTestId("zpl-file"),
                      new File([PLANT_ZPL], "Plant Unit.zpl", { type: "application/octet-stream" }));
    expect(await within(dialog).findByTestId("picked-file")).toHaveTextContent("Plant Unit.zpl");
    expect(within(dialog).getByRole("textbox", { name: "Name" })).toHaveValue("plant_unit");
    // {{product}}, {{gtin}}, {{lot_number}}, {{serial_number}}, {{ean}}: the placeholders the kernel read
    await within(dialog).findByTestId("field-row-4");
    await user.click(within(dialog).getByRole("button", { name: "Upload" }));
    await screen.findByTestId("upload-result");
    const file = form?.get("file") as File;
    expect(file.name).toBe("Plant Unit.zpl");
    expect(await file.text()).toBe(PLANT_ZPL);
    expect(form?.get("name")).toBe("plant_unit");
    expect(JSON.parse(String(form?.get("fields"))).map((f: { name: string }) => f.name))
      .toEqual(["product", "gtin", "lot_number", "serial_number", "ean"]);
  });

  it("shows the ^FN fields and placeholders the kernel reads before saving, and declares an ^FN field", async () => {
    loginAs("production_manager");
    serveTemplates();
    serveInspection(PLANT_INSPECTION);
    let sent: Seen | undefined;
    kernel.route("POST", "/api/v1/labels/templates", (req) => {
      sent = req;
      return { status: 201, body: { ...template("plant", 1), warnings: [] } };
    });
    render(<LabelTemplatesPage render={quickRender} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Upload template" }));
    const dialog = await screen.findByRole("dialog");
    await user.type(within(dialog).getByRole("textbox", { name: "Name" }), "plant");
    await user.click(within(dialog).getByRole("textbox", { name: "ZPL" }));
    await user.paste(PLANT_ZPL);
    await user.tab();
    const detected = await within(dialog).findByRole("region", { name: "Read by the server" });
    // asked of the kernel with the text as it is: one reading, the server's
    const asked = kernel.seen.filter((x) => x.path === "/api/v1/labels/templates/inspect");
    expect(asked.map((x) => x.body)).toEqual([{ zpl: PLANT_ZPL }]);
    expect(within(detected).getByTestId("detected-fn-1")).toHaveTextContent(
      "^FN1 text · prints “LOT-PLACEHOLDER” when not filled — not declared: prints its default");
    expect(within(detected).getByTestId("detected-fn-2")).toHaveTextContent("^FN2 text, code128 · in 2 fields");
    expect(within(detected).getByTestId("detected-placeholders")).toHaveTextContent(
      "Placeholders: {{product}} {{gtin}} {{lot_number}} {{serial_number}} {{ean}}");

    // the serial_number row takes ^FN2; ^FN1 is declared from the list (a row named after it)
    const serialRow = within(dialog).getByTestId("field-row-3");
    expect(within(serialRow).getByRole("textbox", { name: "Field" })).toHaveValue("serial_number");
    await user.type(within(serialRow).getByRole("textbox", { name: "^FN no." }), "2");
    expect(within(detected).getByTestId("detected-fn-2")).toHaveTextContent("declared as serial_number");
    await user.click(within(detected).getByRole("button", { name: "Declare ^FN1" }));
    const fnRow = await within(dialog).findByTestId("field-row-5");
    expect(within(fnRow).getByRole("textbox", { name: "Field" })).toHaveValue("field_1");
    expect(within(fnRow).getByRole("textbox", { name: "^FN no." })).toHaveValue("1");
    expect(within(detected).getByTestId("detected-fn-1")).toHaveTextContent("declared as field_1");
    // a number the file lacks is flagged before the kernel would refuse it
    await user.clear(within(fnRow).getByRole("textbox", { name: "^FN no." }));
    await user.type(within(fnRow).getByRole("textbox", { name: "^FN no." }), "7");
    expect(within(detected).getByTestId("fn-missing")).toHaveTextContent(
      "Field \"field_1\" names ^FN7, which the ZPL lacks.");
    await user.clear(within(fnRow).getByRole("textbox", { name: "^FN no." }));
    await user.type(within(fnRow).getByRole("textbox", { name: "^FN no." }), "1");
    await user.click(within(dialog).getByRole("button", { name: "Upload" }));
    await screen.findByTestId("upload-result");
    const fields = (sent?.body as { fields: { name: string; fn: number | null }[] }).fields;
    expect(fields.map((f) => [f.name, f.fn])).toEqual([["product", null], ["gtin", null], ["lot_number", null],
      ["serial_number", 2], ["ean", null], ["field_1", 1]]);
  });

  it("shows the kernel's refusal with its code, and refuses bad declarations before sending", async () => {
    loginAs("production_manager");
    serveTemplates();
    const refusal = { detail: { code: "ZPL_INVALID", message: "^ZZ is not a ZPL II command", command: "^ZZ",
                                offset: 3 } };
    kernel.route("POST", "/api/v1/labels/templates", () => ({ status: 422, body: refusal }));
    serveInspection({ status: 422, body: refusal });
    render(<LabelTemplatesPage render={quickRender} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Upload template" }));
    const dialog = await screen.findByRole("dialog");
    await user.type(within(dialog).getByRole("textbox", { name: "Name" }), "bad");
    await user.click(within(dialog).getByRole("textbox", { name: "ZPL" }));
    await user.paste("^XA^ZZ^XZ");
    await user.click(within(dialog).getByRole("button", { name: "Add field" }));
    // the kernel's reading of the file says so before anything is saved
    expect(await within(dialog).findByTestId("inspect-error")).toHaveTextContent(
      "The server cannot read this ZPL: ^ZZ is not a ZPL II command — at ^ZZ, byte 3 [ZPL_INVALID]");
    await user.type(within(dialog).getByRole("textbox", { name: "Field" }), "Bad Name");
    await user.click(within(dialog).getByRole("button", { name: "Upload" }));
    expect(await within(dialog).findByTestId("upload-error")).toHaveTextContent(/Field "Bad Name": a name is/);
    expect(kernel.seen.some((s) => s.method === "POST" && s.path === "/api/v1/labels/templates")).toBe(false);

    await user.click(within(dialog).getByRole("button", { name: "Remove field Bad Name" }));
    await user.click(within(dialog).getByRole("button", { name: "Upload" }));
    await waitFor(() => expect(within(dialog).getByTestId("upload-error")).toHaveTextContent(
      "^ZZ is not a ZPL II command — at ^ZZ, byte 3 [ZPL_INVALID]"));
  });

  it("retires a template with a reason, for a user with labels:templates", async () => {
    loginAs("production_manager");
    serveTemplates();
    let retired: Seen | undefined;
    kernel.route("POST", "/api/v1/labels/templates/plant_unit/retire", (req) => {
      retired = req;
      return { body: template("plant_unit", 2, { status: "retired" }) };
    });
    render(<LabelTemplatesPage render={quickRender} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "plant_unit" }));
    await user.click(await screen.findByTestId("retire"));
    const dialog = await screen.findByRole("dialog", { name: "Retire plant_unit?" });
    await user.type(within(dialog).getByRole("textbox", { name: "Reason" }), "new box size");
    const listsBefore = kernel.seen.filter((s) => s.path === "/api/v1/labels/templates").length;
    await user.click(within(dialog).getByTestId("retire-confirm"));
    await waitFor(() => expect(retired?.body).toEqual({ reason: "new box size" }));
    await waitFor(() => expect(kernel.seen.filter((s) => s.path === "/api/v1/labels/templates").length)
      .toBeGreaterThan(listsBefore));
  });

  it("lists retired templates when asked", async () => {
    loginAs("viewer");
    serveTemplates();
    render(<LabelTemplatesPage render={quickRender} />);
    await screen.findByRole("button", { name: "unit_label" });
    await userEvent.setup().click(screen.getByLabelText("Show retired"));
    const row = (await screen.findByRole("button", { name: "old_box" })).closest("tr") as HTMLElement;
    expect(row).toHaveTextContent("retired");
  });

  it("says the page is not available when the label plugin is not loaded", async () => {
    loginAs("viewer");
    render(<LabelTemplatesPage render={quickRender} />);
    expect(await screen.findByTestId("not-available")).toBeInTheDocument();
  });

  it("says so when the in-browser renderer cannot draw, and still shows the server's preview", async () => {
    loginAs("viewer");
    serveTemplates(SIMPLE_ZPL);
    const failing = async () => { throw new Error("wasm: out of memory"); };
    render(<LabelTemplatesPage render={failing} />);
    await userEvent.setup().click(await screen.findByRole("button", { name: "plant_unit" }));
    expect(await screen.findByTestId("preview-browser-failed")).toHaveTextContent(
      "The in-browser renderer could not draw this label: wasm: out of memory");
    expect(await screen.findByTestId("preview-server")).toBeInTheDocument();
    expect(screen.queryByTestId("cjk-note")).toBeNull();
  });
});

describe("the in-browser ZPL renderer (zpl-renderer-js)", () => {
  it("draws a real label with a ^GF graphic to a PNG of the label's size", async () => {
    const src = await renderZpl(PLANT_ZPL, { width: 812, height: 406, dpi: 203 });
    expect(src.startsWith(PNG_SIGNATURE)).toBe(true);
    const png = Buffer.from(src.slice("data:image/png;base64,".length), "base64");
    // IHDR: width and height are the big-endian words at bytes 16 and 20
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([812, 406]);
  }, 120_000);

  it("works out millimetres and dots per millimetre from a template's size", () => {
    expect(renderArgs({ width: 812, height: 406, dpi: 203 })).toEqual({ widthMm: 101.5, heightMm: 50.75, dpmm: 8 });
    expect(renderArgs({ width: 1200, height: 600, dpi: 300 })).toEqual({ widthMm: 100, heightMm: 50, dpmm: 12 });
    expect(renderArgs({ width: 0, height: 0, dpi: 203 })).toEqual({ widthMm: 101.5, heightMm: 50.75, dpmm: 8 });
  });

  it("knows which text it cannot draw", () => {
    expect(hasCjk("제품: 센서")).toBe(true);
    expect(hasCjk("中文 · 日本語")).toBe(true);
    expect(hasCjk("NeuroHub Gerät ½ kg")).toBe(false);
  });
});

describe("field declarations", () => {
  it("names a ^FN field after its designer's prompt, else field_<n>, never twice", () => {
    const fn = { fn: 3, prompt: null, default: null, uses: 1, kinds: ["text"] };
    expect(nameForFn(fn, new Set())).toBe("field_3");
    expect(nameForFn({ ...fn, prompt: "Product Name" }, new Set())).toBe("product_name");
    expect(nameForFn({ ...fn, prompt: "Product Name" }, new Set(["product_name"]))).toBe("product_name_2");
    expect(nameForFn({ ...fn, prompt: "제품" }, new Set(["field_3"]))).toBe("field_3_2");
  });

  it("tells which row declares each ^FN the kernel found, and which rows name one it did not", () => {
    const row = { name: "a", type: "text" as const, required: true, fn: "1", max_length: "40" };
    const found = PLANT_INSPECTION.fn_fields;
    const { declaredAs, missing } = fnDeclarations([row, { ...row, name: "b", fn: "9" }, { ...row, name: "c", fn: "" }],
                                                   found);
    expect([...declaredAs]).toEqual([[1, "a"]]);
    expect(missing).toEqual([{ name: "b", fn: 9 }]);
  });

  it("guesses a type from the name", () => {
    expect(["lot_number", "serial_number", "gtin", "product", "best_before_date", "qty", "note"].map(guessType))
      .toEqual(["lot_number", "serial_number", "gtin", "product", "date", "integer", "text"]);
  });

  it("refuses names, ^FN numbers and lengths the kernel would refuse", () => {
    const row = { name: "a", type: "text" as const, required: true, fn: "", max_length: "40" };
    expect(declarations([row, row])).toEqual({ error: "labels.errors.fieldTwice", name: "a" });
    expect(declarations([{ ...row, name: "1a" }])).toEqual({ error: "labels.errors.fieldName", name: "1a" });
    expect(declarations([{ ...row, fn: "0" }])).toEqual({ error: "labels.errors.fn", name: "a" });
    expect(declarations([{ ...row, max_length: "5000" }])).toEqual({ error: "labels.errors.maxLength", name: "a" });
    expect(declarations([{ ...row, fn: "12" }])).toEqual({
      fields: [{ name: "a", type: "text", required: true, fn: 12, max_length: 40 }] });
  });
});
