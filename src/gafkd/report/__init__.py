"""The report stage: the runs' records -> tables, statistics, figures and the report.

Owns the runs' rows and their means per group (runs), the statistics (statistics, comparisons,
ranks, intervals, testset), the prose and tables of the report (comparison_text, reporting) and
its figures (figures).

May import: anything below it (gafkd.data, gafkd.images, gafkd.train, gafkd.distill) and the
shared top-level modules. Nothing imports it but the workflow's scripts.
"""
