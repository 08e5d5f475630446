"""cloudeye-operator: roll the Huawei Cloud Eye agent out to fleets of servers from Kubernetes."""

__version__ = "0.1.0"
