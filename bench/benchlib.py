"""What the bench/*-compare scripts share: CPU time of a process from /proc, medians with their range,
the machine's description and a gnuplot bar chart."""
import os
import platform
import shutil
import statistics
import subprocess

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def fmt(values, spec):
    med = statistics.median(values)
    return f"{med:{spec}} ({min(values):{spec}}-{max(values):{spec}})" if len(values) > 1 else f"{med:{spec}}"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}"


def chart(out_md, names, rows, ylabel):
    """rows: (configuration, server, value). Writes OUT.png beside the report when gnuplot is there."""
    if not shutil.which("gnuplot"):
        return None
    data = out_md.rsplit(".", 1)[0] + ".dat"
    png = out_md.rsplit(".", 1)[0] + ".png"
    with open(data, "w") as f:
        f.write("config " + " ".join(names) + "\n")
        for c in dict.fromkeys(c for c, _, _ in rows):
            f.write(c + " " + " ".join(f"{v:.3f}" for cc, _, v in rows if cc == c) + "\n")
    plot = (f"set terminal png size 1200,600; set output '{png}'; set style data histograms;"
            " set style fill solid border -1; set logscale y;"
            f" set ylabel '{ylabel}';"
            " set key outside; set xtics rotate by -30;"
            f" plot for [i=2:{len(names) + 1}] '{data}' using i:xtic(1) title columnheader(i)")
    subprocess.run(["gnuplot", "-e", plot], check=True)
    os.remove(data)
    return png
