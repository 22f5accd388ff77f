//! The device forest: pre-order and post-order traversals of a subtree or of everything, and
//! ancestry.

use super::*;

/// Which part of the device forest a traversal covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    Subtree(u32),
    All,
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    pub(crate) fn scope_first(&self, scope: Scope) -> Option<u32> {
        match scope {
            Scope::Subtree(root) => Some(root),
            Scope::All => self.roots.head(),
        }
    }

    pub(crate) fn preorder_next(&self, node: u32, scope: Scope) -> Option<u32> {
        if let Some(child) = self.devices[node].children.head() {
            return Some(child);
        }
        let mut node = node;
        loop {
            if scope == Scope::Subtree(node) {
                return None;
            }
            if let Some(sibling) = self.devices[node].sibling.next() {
                return Some(sibling);
            }
            node = self.devices[node].parent.get()?;
        }
    }

    pub(crate) fn first_leaf(&self, node: u32) -> u32 {
        let mut node = node;
        while let Some(child) = self.devices[node].children.head() {
            node = child;
        }
        node
    }

    pub(crate) fn postorder_first(&self, scope: Scope) -> Option<u32> {
        self.scope_first(scope).map(|node| self.first_leaf(node))
    }

    pub(crate) fn postorder_next(&self, node: u32, scope: Scope) -> Option<u32> {
        if scope == Scope::Subtree(node) {
            return None;
        }
        match self.devices[node].sibling.next() {
            Some(sibling) => Some(self.first_leaf(sibling)),
            None => self.devices[node].parent.get(),
        }
    }

    pub(crate) fn is_ancestor(&self, ancestor: u32, node: u32) -> bool {
        let mut current = self.devices[node].parent.get();
        while let Some(parent) = current {
            if parent == ancestor {
                return true;
            }
            current = self.devices[parent].parent.get();
        }
        false
    }
}
