import statistics,glob,sys,os
rows={}; order=[]
for f in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "t2-*.md"))):
    side=os.path.basename(f).split("-")[1]
    for line in open(f):
        if not line.startswith('|') or 'workload' in line or '---' in line: continue
        cells=[c.strip() for c in line.strip().strip('|').split('|')]
        try: v=float(cells[2])
        except: continue
        if cells[0] not in rows: order.append(cells[0])
        rows.setdefault(cells[0],{}).setdefault(side,[]).append((cells[1],v))
print("| workload | unit | before (7be2177) median (min-max) | after median (min-max) | after / before |")
print("|---|---|---:|---:|---:|")
for name in order:
    d=rows[name]; o=[v for _,v in d['old']]; n=[v for _,v in d['new']]; unit=d['old'][0][0]
    mo=statistics.median(o); mn=statistics.median(n)
    print(f"| {name} | {unit} | {mo:.4g} ({min(o):.4g}-{max(o):.4g}) | {mn:.4g} ({min(n):.4g}-{max(n):.4g}) | {mn/mo:.2f} |")
