"""The inline stylesheet of certificate.html (kept apart so the page builder stays readable).

System fonts only, light backgrounds only (the report is printed), and a print stylesheet that starts
each big section on a new page, keeps rows and charts whole and keeps the verdict colours on paper.
No ``url(...)``, no ``@import``: the page must not reach for anything outside itself.
"""

from __future__ import annotations

CSS = """
:root{--ink:#1d2125;--muted:#5f6670;--line:#d5dae0;--soft:#f4f6f8;
--pass:#16692f;--pass-bg:#e8f5ec;--pass-bd:#2e8b57;--fail:#a11d16;--fail-bg:#fdeceb;--fail-bd:#c93a2f;
--inc:#8a4e00;--inc-bg:#fff3dc;--inc-bd:#e0980b;--grey:#4b5259;--grey-bg:#f0f2f4;--grey-bd:#9aa1a9}
*{box-sizing:border-box}
html{background:#fff}
body{margin:0;color:var(--ink);background:#fff;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 40px 56px}
h1{font-size:28px;line-height:1.2;margin:2px 0 4px}
h2{font-size:20px;margin:40px 0 14px;padding-bottom:6px;border-bottom:2px solid var(--ink)}
h3{font-size:16px;margin:24px 0 8px}
h4{font-size:14px;margin:18px 0 6px}
code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:.92em}
a{color:#0b57a4;text-decoration:none}a:hover{text-decoration:underline}
.muted{color:var(--muted)}.small{font-size:12px}
.hash{font-family:ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:11px;color:var(--muted);
word-break:break-all}
.kicker{margin:0;text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--muted);font-weight:600}
.sub{margin:0;color:var(--muted)}
.title-row{display:flex;justify-content:space-between;align-items:flex-start;gap:24px;padding:8px 0 18px;
border-bottom:1px solid var(--line);margin-bottom:16px}
.overall{text-align:center;min-width:250px;flex-shrink:0}
.overall .label{font-size:12px;text-transform:uppercase;letter-spacing:.08em;color:var(--muted);margin-bottom:6px}
.grade{margin-top:8px;font-size:13px;font-weight:600}.grade.ok{color:var(--pass)}.grade.not{color:var(--inc)}
.alert{border:2px solid;border-radius:6px;padding:10px 14px;margin:0 0 14px}
.alert.fail{border-color:var(--fail-bd);background:var(--fail-bg);color:var(--fail)}
.alert.inc{border-color:var(--inc-bd);background:var(--inc-bg);color:var(--inc)}
.badge{display:inline-block;padding:1px 7px;border:1.5px solid;border-radius:4px;font-weight:700;font-size:11.5px;
letter-spacing:.02em;white-space:nowrap;line-height:1.5}
.badge.big{font-size:34px;padding:4px 26px;border-width:3px;border-radius:8px;letter-spacing:.04em}
.badge.big.long{font-size:21px;padding:6px 10px;white-space:normal;max-width:250px;line-height:1.2}
.badge.doc{border-style:dashed;background:#fff}
.v-pass{color:var(--pass);background:var(--pass-bg);border-color:var(--pass-bd)}
.v-fail{color:var(--fail);background:var(--fail-bg);border-color:var(--fail-bd)}
.v-inc{color:var(--inc);background:var(--inc-bg);border-color:var(--inc-bd)}
.v-grey{color:var(--grey);background:var(--grey-bg);border-color:var(--grey-bd)}
.vt{font-size:11px;font-weight:700;background:none!important}
.vt.v-pass{color:var(--pass)}.vt.v-fail{color:var(--fail)}.vt.v-inc{color:var(--inc)}.vt.v-grey{color:var(--grey)}
.ok-text{color:var(--pass);font-weight:600}.fail-text{color:var(--fail);font-weight:700}
dl.facts{display:grid;grid-template-columns:170px 1fr;gap:4px 16px;margin:8px 0 12px}
dl.facts dt{color:var(--muted);font-weight:600}dl.facts dd{margin:0}
.counts{display:flex;flex-wrap:wrap;gap:8px 18px;margin:6px 0}
.count b{font-size:15px;margin-left:2px}
.dut{border:1px solid var(--line);border-radius:8px;padding:4px 18px 12px;margin:12px 0}
.dut-head{display:flex;align-items:center;gap:12px}.dut-head h3{margin:14px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border:1px solid var(--line);padding:5px 7px;vertical-align:top;text-align:left}
thead th{background:var(--soft);font-size:12px;font-weight:700}
table.matrix{table-layout:fixed;font-size:12.5px}table.matrix td{overflow-wrap:break-word}
.c-no{width:7%}.c-ru{width:32%}.c-gist{width:23%}.c-kind{width:9%}.c-v{width:13%}.c-checks{width:16%}
tr.chapter th{background:#e7ecf2;font-size:13px;padding:7px 8px;border-top:2px solid #aab4c0}
td.no{font-weight:700;white-space:nowrap}
td.ru{font-size:11px;line-height:1.4;color:#30363c;hyphens:auto}
td.kind{font-size:11.5px;color:var(--muted);overflow-wrap:anywhere}
td.verdict .badge{white-space:normal}
.why{color:#3b4148;font-size:12px;margin-top:3px}
tr.r-fail td.no{box-shadow:inset 4px 0 0 var(--fail-bd)}
tr.r-inc td.no{box-shadow:inset 4px 0 0 var(--inc-bd)}
tr.r-pass td.no{box-shadow:inset 4px 0 0 var(--pass-bd)}
ul.checks{list-style:none;margin:0;padding:0;font-size:11.5px}ul.checks li{margin-bottom:2px}
ul.checks a,ul.checks .vt{white-space:nowrap}
.tag{font-size:10px;border:1px dashed var(--grey-bd);border-radius:3px;padding:0 3px;color:var(--grey)}
ul.reasons{padding-left:20px}ul.reasons>li{margin:6px 0}.reason{color:#3b4148}
ul.check-reasons{font-size:12.5px;margin:4px 0;padding-left:18px}
article.check{border:1px solid var(--line);border-radius:8px;padding:10px 16px 6px;margin:14px 0}
.check-head{display:flex;flex-wrap:wrap;align-items:baseline;gap:10px;padding-bottom:6px;border-bottom:1px solid
var(--line)}
.cid{font-weight:700;font-family:ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace}
.ctitle{flex:1;font-weight:600}
p.meta{margin:6px 0 8px;font-size:12.5px}p.meta .muted{margin-left:2px}
p.why{margin:4px 0 10px;padding:6px 10px;background:var(--soft);border-left:3px solid var(--grey-bd);font-size:13px}
.attempts{font-size:12.5px;margin:6px 0}
table.meas{font-size:12px;table-layout:fixed}table.meas td{overflow-wrap:anywhere}
table.meas td.num{font-variant-numeric:tabular-nums}
.m-name{width:25%}.m-val{width:17%}.m-lim{width:17%}.m-unit{width:7%}.m-res{width:7%}.m-note{width:27%}
table.meas tr.failed td{background:var(--fail-bg)}
figure.chart{margin:10px 0 14px}
svg.chart{max-width:100%;height:auto;display:block;border:1px solid var(--line);border-radius:4px}
section.first{border:1px solid var(--line);border-radius:8px;padding:2px 18px 8px;margin:10px 0}
section.first h2{font-size:18px;margin:10px 0 4px;padding:0;border:0}
section.first .dut-head{flex-wrap:wrap}
h3.why-head{margin:8px 0 4px;font-size:15px}
ul.why-list{list-style:none;margin:0;padding:0}ul.why-list>li{margin:6px 0}
ul.why-list .gist{color:var(--muted);font-size:12.5px}
.why-clause{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
ul.why-list>li.compact{margin:3px 0;font-size:13px}
ul.why-checks{list-style:none;margin:2px 0 0;padding:0 0 0 14px;font-size:13px}
ul.why-checks li{margin:2px 0}
ul.why-checks .line{color:#3b4148}
a.ev{font-size:12px;white-space:nowrap}
p.note{margin:6px 0;font-size:12.5px}
p.statement{margin:8px 0;font-size:15px;font-weight:700;color:var(--pass)}
details.na-group{border:1px solid var(--line);border-radius:6px;padding:6px 12px;margin:8px 0}
details.na-group summary{cursor:pointer}
details.na-group .nums{font-size:12px;color:var(--muted)}
footer{margin-top:18px;padding-top:10px;border-top:1px solid var(--line)}
@page{size:A4;margin:13mm 11mm 14mm}
@media print{
body{font-size:10.5px}main{max-width:none;padding:0}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.page-break{break-before:page}
h2,h3,h4{break-after:avoid}
details.na-group::details-content{content-visibility:visible;display:contents}
.why-clause{white-space:normal}
tr,article.check .check-head,figure.chart,dl.facts,.alert{break-inside:avoid}
thead{display:table-header-group}
a{color:inherit}
h1{font-size:22px}h2{font-size:16px;margin-top:24px}.page-break>h2{margin-top:0}h3{font-size:13px}h4{font-size:11px}
tr.chapter th{font-size:10px}
dl.facts{grid-template-columns:130px 1fr}
table.matrix,table.meas,p.meta,p.why,.attempts,ul.check-reasons{font-size:9.5px}
td.ru,td.kind,ul.checks,.why,.small,.hash,.vt,.tag{font-size:8.5px}
thead th{font-size:9.5px}th,td{padding:3px 5px}
.badge{font-size:9px}.badge.big{font-size:26px}.badge.big.long{font-size:18px}
}
"""
