"""How the mid-size files of session 48's sitting were made (datasets.yaml beside this file).
doctor_contacts_60k / german_health_60k: the public file's rows drawn with replacement (seed 1), 2% multiplicative
noise on float columns with more than 50 distinct values. hc60k / hc120k: the first 60,000 / 120,000 rows of the
1.2 GB file hc_probe.py (beside this file) wrote for its 400 MB probe: doctor_contacts rows with noise on linc and
age, a Zipf-drawn 200,000-level `provider` and a 5,000-level `region` that shift the target. (tests/proc_peaks.py
write_big_csv(..., high_cardinality=True) adds the same two columns by the same rules, with lpi's noise too.)"""
import numpy as np
import pandas as pd

rng = np.random.default_rng(1)
for name, n in (("doctor_contacts", 60000), ("german_health", 60000)):
    b = pd.read_csv(f"../shared/datasets/{name}.csv")
    d = b.iloc[rng.integers(0, len(b), n)].reset_index(drop=True)
    for c in d.columns:
        if d[c].dtype.kind == "f" and d[c].nunique() > 50:
            d[c] = d[c] * (1 + rng.normal(0, 0.02, n))
    d.to_csv(f"/tmp/{name}_60k.csv", index=False)
