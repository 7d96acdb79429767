rule figure_class_incremental:
    """The paper's left panel: final accuracy on each digit pair, per optimizer."""
    input:
        metrics=run_metrics("class_incremental"),
    output:
        pdf=report("figures/class_incremental_final_accuracy.pdf",
                   caption="../report/class_incremental_final_accuracy.rst", category="Continual learning"),
        png="figures/class_incremental_final_accuracy.png",
    params:
        order=OPTIMIZERS,
    log:
        "logs/figures/class_incremental_final_accuracy.log",
    conda:
        ENV
    shell:
        "optbias figure final-accuracy --inputs {input.metrics} --order {params.order} --out {output} "
        "--title 'Class-incremental MNIST: accuracy of the final model per pair' > {log} 2>&1"


rule figure_permuted:
    """Permuted MNIST: accuracy on task 1 after each task, per optimizer."""
    input:
        metrics=run_metrics("permuted"),
    output:
        pdf=report("figures/permuted_first_task_accuracy.pdf",
                   caption="../report/permuted_first_task_accuracy.rst", category="Continual learning"),
        png="figures/permuted_first_task_accuracy.png",
    params:
        order=OPTIMIZERS,
    log:
        "logs/figures/permuted_first_task_accuracy.log",
    conda:
        ENV
    shell:
        "optbias figure first-task-accuracy --inputs {input.metrics} --order {params.order} --out {output} "
        "--title 'Permuted MNIST: accuracy on task 1' > {log} 2>&1"


rule figure_accuracy_matrices:
    """Heatmaps of the accuracy matrix R (mean over seeds), one per optimizer."""
    input:
        metrics=lambda w: run_metrics(w.benchmark),
    output:
        pdf=report("figures/accuracy_matrices_{benchmark}.pdf",
                   caption="../report/accuracy_matrices.rst", category="Continual learning"),
        png="figures/accuracy_matrices_{benchmark}.png",
    params:
        order=OPTIMIZERS,
    log:
        "logs/figures/accuracy_matrices_{benchmark}.log",
    conda:
        ENV
    shell:
        "optbias figure accuracy-matrices --inputs {input.metrics} --order {params.order} --out {output} "
        "--title 'Accuracy matrix, {wildcards.benchmark}' > {log} 2>&1"
