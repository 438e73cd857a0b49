"""Nodes: the inventory that groups are resolved against (`inventory`, pure) and the facts of this
machine (`gather`, which reads the system and so is imported only where the CLI wires things up).
"""

from reconciler.nodes.inventory import (
    IMPLICIT_NODE_ID,
    Inventory,
    InventoryDocument,
    InventoryError,
    Node,
    Transport,
    inventory_from_document,
    validate_inventory,
)

__all__ = [
    "IMPLICIT_NODE_ID",
    "Inventory",
    "InventoryDocument",
    "InventoryError",
    "Node",
    "Transport",
    "inventory_from_document",
    "validate_inventory",
]
