/**
 * The status-bar item "⚡ 12.3 J ±0.2": the last energy the server measured for the active file,
 * from its `wattson/energyMeasured` notifications. Clicking it profiles the file again.
 */
import type { StatusBarItem, TextEditor } from "vscode";

import { isCudaDocument } from "./documents";
import { createStatusBarItem, parseUri } from "./vscodeapi";

export const ENERGY_MEASURED_NOTIFICATION = "wattson/energyMeasured";

/** The notification's parameters (docs/lsp.md). */
export interface EnergyMeasurement {
  uri: string;
  energy_j: number;
  ci_low_j: number;
  ci_high_j: number;
  device: string;
  measured_at: string;
  /** Measured for an earlier text of the file. */
  stale: boolean;
}

/** Reads the notification; a missing interval (a single trial) reads as no spread. */
export function parseEnergyMeasurement(value: unknown): EnergyMeasurement | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const v = value as Record<string, unknown>;
  const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
  if (typeof v.uri !== "string" || !finite(v.energy_j)) {
    return undefined;
  }
  return {
    uri: v.uri,
    energy_j: v.energy_j,
    ci_low_j: finite(v.ci_low_j) ? v.ci_low_j : v.energy_j,
    ci_high_j: finite(v.ci_high_j) ? v.ci_high_j : v.energy_j,
    device: typeof v.device === "string" ? v.device : "",
    measured_at: typeof v.measured_at === "string" ? v.measured_at : "",
    stale: v.stale === true,
  };
}

/**
 * "12.3 J ±0.2": the uncertainty (the wider side of the CI) rounded to one significant digit,
 * and the energy to the same decimal place, so no digit is shown that the measurement lacks.
 */
export function formatEnergy(energyJ: number, ciLowJ: number, ciHighJ: number): string {
  const halfWidthJ = Math.max(ciHighJ - energyJ, energyJ - ciLowJ, 0);
  if (halfWidthJ === 0) {
    // No spread reported (a single trial): three significant digits, without exponents.
    const decimals = Math.abs(energyJ) >= 100 ? 0 : Math.abs(energyJ) >= 10 ? 1 : 2;
    return `${energyJ.toFixed(decimals)} J`;
  }
  const decimals = Math.min(3, Math.max(0, -Math.floor(Math.log10(halfWidthJ))));
  return `${energyJ.toFixed(decimals)} J ±${halfWidthJ.toFixed(decimals)}`;
}

/** URIs from the server and from VS Code may differ in escaping; compare them normalized. */
export function uriKey(uri: string): string {
  try {
    return parseUri(uri).toString();
  } catch {
    return uri;
  }
}

export class EnergyStatusBar {
  private readonly item: StatusBarItem;
  private readonly measurements = new Map<string, EnergyMeasurement>();

  constructor(profileCommand: string) {
    this.item = createStatusBarItem("wattson.energy", 100);
    this.item.name = "Wattson energy";
    this.item.command = profileCommand;
  }

  record(measurement: EnergyMeasurement, activeEditor: TextEditor | undefined): void {
    this.measurements.set(uriKey(measurement.uri), measurement);
    this.show(activeEditor);
  }

  show(editor: TextEditor | undefined): void {
    const document = editor?.document;
    if (document === undefined || !isCudaDocument(document)) {
      this.item.hide();
      return;
    }
    const measurement = this.measurements.get(uriKey(document.uri.toString()));
    if (measurement === undefined) {
      this.item.text = "⚡ —";
      this.item.tooltip = "Wattson: no energy measured for this file yet. Click to profile it.";
    } else {
      const energy = formatEnergy(measurement.energy_j, measurement.ci_low_j, measurement.ci_high_j);
      this.item.text = `⚡ ${energy}${measurement.stale ? " (stale)" : ""}`;
      this.item.tooltip = describeMeasurement(measurement);
    }
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}

export function describeMeasurement(m: EnergyMeasurement): string {
  const lines = [
    `Wattson: energy of one run of this program, ${m.energy_j.toFixed(3)} J ` +
      `(95 % CI ${m.ci_low_j.toFixed(3)}–${m.ci_high_j.toFixed(3)} J)`,
  ];
  if (m.device !== "" || m.measured_at !== "") {
    lines.push(`Measured${m.device === "" ? "" : ` on ${m.device}`}${m.measured_at === "" ? "" : ` at ${m.measured_at}`}`);
  }
  if (m.stale) {
    lines.push("This figure is for an earlier version of the file.");
  }
  lines.push("Click to profile again.");
  return lines.join("\n");
}
