import * as assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { EnergyStatusBar, formatEnergy, parseEnergyMeasurement, uriKey } from "../../src/statusBar";
import * as vscode from "../mock/vscode";
import { fakeEditor } from "./helpers";

describe("formatEnergy", () => {
  it("rounds to the uncertainty's first digit", () => {
    assert.equal(formatEnergy(12.3456, 12.15, 12.52), "12.3 J ±0.2");
    assert.equal(formatEnergy(0.05234, 0.0501, 0.0549), "0.052 J ±0.003");
    assert.equal(formatEnergy(1234.4, 1222.1, 1240), "1234 J ±12");
  });

  it("uses the wider side of an asymmetric interval", () => {
    assert.equal(formatEnergy(10, 9.9, 10.6), "10.0 J ±0.6");
  });

  it("shows three significant digits when there is no spread", () => {
    assert.equal(formatEnergy(12.34, 12.34, 12.34), "12.3 J");
    assert.equal(formatEnergy(120, 120, 120), "120 J");
    assert.equal(formatEnergy(0.5, 0.5, 0.5), "0.50 J");
  });
});

describe("parseEnergyMeasurement", () => {
  const good = { uri: "file:///a.cu", energy_j: 1, ci_low_j: 0.9, ci_high_j: 1.1, device: "H100", measured_at: "2025-01-01T00:00:00Z" };

  it("accepts the documented notification and rejects malformed ones", () => {
    assert.deepEqual(parseEnergyMeasurement(good), { ...good, stale: false });
    assert.equal(parseEnergyMeasurement({ ...good, energy_j: "1" }), undefined);
    assert.equal(parseEnergyMeasurement({ ...good, energy_j: Number.NaN }), undefined);
    assert.equal(parseEnergyMeasurement(null), undefined);
  });

  it("reads a missing interval as no spread, and keeps the stale flag", () => {
    assert.deepEqual(parseEnergyMeasurement({ ...good, ci_low_j: null, ci_high_j: undefined, stale: true }), {
      ...good,
      ci_low_j: 1,
      ci_high_j: 1,
      stale: true,
    });
  });
});

describe("EnergyStatusBar", () => {
  beforeEach(() => {
    vscode.reset();
    vscode.statusBarItems.length = 0;
  });

  const measurement = {
    uri: "file:///work/my%20app/jacobi.cu",
    energy_j: 12.3,
    ci_low_j: 12.1,
    ci_high_j: 12.5,
    device: "NVIDIA H100 80GB HBM3",
    measured_at: "2025-06-01T10:00:00Z",
    stale: false,
  };

  it("shows the active file's last measurement, matching URIs however they are escaped", () => {
    const bar = new EnergyStatusBar("wattson.profileFile");
    const item = vscode.statusBarItems[0];
    const editor = fakeEditor("", "/work/my app/jacobi.cu");
    bar.record(measurement, editor as never);
    assert.equal(item.visible, true);
    assert.equal(item.text, "⚡ 12.3 J ±0.2");
    assert.match(String(item.tooltip), /NVIDIA H100 80GB HBM3/);
    assert.equal(item.command, "wattson.profileFile");
  });

  it("marks a figure measured for an earlier text", () => {
    const bar = new EnergyStatusBar("wattson.profileFile");
    bar.record({ ...measurement, stale: true }, fakeEditor("", "/work/my app/jacobi.cu") as never);
    assert.equal(vscode.statusBarItems[0].text, "⚡ 12.3 J ±0.2 (stale)");
    assert.match(String(vscode.statusBarItems[0].tooltip), /earlier version of the file/);
  });

  it("offers to profile a CUDA file with no measurement, and hides for other files", () => {
    const bar = new EnergyStatusBar("wattson.profileFile");
    const item = vscode.statusBarItems[0];
    bar.record(measurement, fakeEditor("", "/work/other.cu") as never);
    assert.equal(item.text, "⚡ —");
    assert.equal(item.visible, true);
    bar.show(fakeEditor("", "/work/readme.md", 0, "markdown") as never);
    assert.equal(item.visible, false);
    bar.show(undefined);
    assert.equal(item.visible, false);
  });

  it("normalizes URIs", () => {
    assert.equal(uriKey("file:///a%20b/c.cu"), uriKey("file:///a b/c.cu"));
  });
});
