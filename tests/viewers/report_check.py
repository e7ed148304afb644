"""Opens a flightrec HTML report from disk in the system's Chromium (Debian `chromium`, driven by
Playwright from PyPI; nothing downloads a browser) and checks it the way a reader meets it:

- no request leaves the file (every non-file request is counted and refused), no console error,
  no uncaught exception;
- the DOM holds the given names (the workload's functions, the findings);
- a screenshot is not blank (larger than one of an empty page of the same size);
- two clicks on each heat map (CPU samples, off-CPU time) select a range, and the range flame
  graph then holds exactly that range's samples or blocked time.

Prints a JSON summary. Usage: report_check.py REPORT SCREENSHOT NAME...
"""
import json
import sys

from playwright.sync_api import sync_playwright


def select(page, canvas, flame, label, key):
    """Two clicks on the busiest cell of a heat map, then on its first and last cells."""
    res = {"whole_total": int(page.get_attribute(flame, "data-total"))}
    cells = page.evaluate("(() => { const c = DATA.timeline." + key + "; "
                          "return c.col.map((x, i) => [x, c.row[i], c.stack[i], c.value[i]]); })()")
    rows = page.evaluate("DATA.timeline.rows")
    cell_w, cell_h = page.evaluate("[CELL, CELLH]")
    counts = {}
    for c, r, _, n in cells:
        counts[(c, r)] = counts.get((c, r), 0) + n
    (c, r), n = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
    box = page.locator(canvas).bounding_box()

    def click(c, r):
        page.mouse.click(box["x"] + c * cell_w + 1, box["y"] + r * cell_h + 1)

    click(c, r)
    click(c, r)
    res["cell"] = [c, r]
    res["cell_total"] = n
    res["range_total"] = int(page.get_attribute(flame, "data-total"))
    res["range_text"] = page.text_content(label)
    keys = [k[0] * rows + k[1] for k in counts]
    click(*divmod(min(keys), rows))
    click(*divmod(max(keys), rows))
    res["all_cells_total"] = int(page.get_attribute(flame, "data-total"))
    return res


def main(report, shot, names):
    out = {"requests_refused": [], "console_errors": [], "page_errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 2000})

        def route(r):
            if r.request.url.startswith("file:"):
                r.continue_()
            else:
                out["requests_refused"].append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: m.type == "error" and out["console_errors"].append(m.text))
        page.on("pageerror", lambda e: out["page_errors"].append(str(e)))
        page.goto("file://" + report)
        page.wait_for_load_state("load")
        page.wait_for_selector("body[data-ready]", state="attached")
        out["ready"] = page.get_attribute("body", "data-ready")
        text = page.content()
        out["missing"] = [n for n in names if n not in text]
        page.screenshot(path=shot, full_page=True)
        blank = browser.new_page(viewport={"width": 1400, "height": 2000})
        blank.set_content("<html><body></body></html>")
        out["screenshot_bytes"] = len(open(shot, "rb").read())
        out["blank_bytes"] = len(blank.screenshot(full_page=True))

        out["oncpu"] = select(page, "#heatmap", "#range-flame", "#range", "cells")
        out["offcpu"] = select(page, "#off-heatmap", "#off-range-flame", "#off-range", "off_cells")
        browser.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
