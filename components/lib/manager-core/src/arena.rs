//! Fixed-capacity generational tables and index-linked (intrusive) lists over them.
//!
//! Every list in the manager (a bus's devices, a device's children, a lock's waiters…) is a
//! doubly linked list threaded through the elements themselves, so the manager allocates
//! nothing and each list operation is O(1).

/// A table of at most `N` objects addressed by `u32` index, with a generation per slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Arena<T, const N: usize> {
    slots: [Slot<T>; N],
    free_head: Option<u32>,
    live: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
    next_free: Link,
}

impl<T, const N: usize> Arena<T, N> {
    const INDEX_FITS: () = assert!(N < u32::MAX as usize, "capacity must fit in a u32 index");

    pub(crate) fn new() -> Self {
        let () = Self::INDEX_FITS;
        Self {
            slots: core::array::from_fn(|index| Slot {
                generation: 0,
                value: None,
                next_free: if index + 1 < N {
                    Link::to((index + 1) as u32)
                } else {
                    Link::NONE
                },
            }),
            free_head: if N > 0 { Some(0) } else { None },
            live: 0,
        }
    }

    /// Stores `value`; returns (index, generation) or gives the value back when the table is full.
    pub(crate) fn insert(&mut self, value: T) -> Result<(u32, u32), T> {
        let Some(index) = self.free_head else {
            return Err(value);
        };
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return Err(value);
        };
        self.free_head = core::mem::take(&mut slot.next_free).get();
        slot.value = Some(value);
        self.live += 1;
        Ok((index, slot.generation))
    }

    /// Deletes the object at `index`; the slot's generation goes up so old handles go stale.
    pub(crate) fn remove(&mut self, index: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.next_free = self.free_head.into();
        self.free_head = Some(index);
        self.live -= 1;
        Some(value)
    }

    pub(crate) fn get(&self, index: u32) -> Option<&T> {
        self.slots.get(index as usize)?.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        self.slots.get_mut(index as usize)?.value.as_mut()
    }

    /// The object named by a handle's parts, if it is still that object.
    pub(crate) fn resolve(&self, index: u32, generation: u32) -> Option<&T> {
        let slot = self.slots.get(index as usize)?;
        if slot.generation == generation {
            slot.value.as_ref()
        } else {
            None
        }
    }

    pub(crate) fn is_live(&self, index: u32, generation: u32) -> bool {
        self.resolve(index, generation).is_some()
    }

    pub(crate) fn generation(&self, index: u32) -> u32 {
        self.slots
            .get(index as usize)
            .map_or(0, |slot| slot.generation)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_full(&self) -> bool {
        self.free_head.is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> + Clone + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| slot.value.as_ref().map(|value| (index as u32, value)))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.slots.iter_mut().filter_map(|slot| slot.value.as_mut())
    }

    pub(crate) fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter().map(|(index, _)| index)
    }
}

impl<T, const N: usize> core::ops::Index<u32> for Arena<T, N> {
    type Output = T;

    /// Internal indices (stored inside the manager) always name live objects; this is checked
    /// by `Manager::invariants`. Handles from outside go through `resolve` instead.
    fn index(&self, index: u32) -> &T {
        match self.get(index) {
            Some(value) => value,
            None => unreachable!("internal index {index} names a free slot"),
        }
    }
}

impl<T, const N: usize> core::ops::IndexMut<u32> for Arena<T, N> {
    fn index_mut(&mut self, index: u32) -> &mut T {
        match self.get_mut(index) {
            Some(value) => value,
            None => unreachable!("internal index {index} names a free slot"),
        }
    }
}

/// An optional table index in four bytes: `u32::MAX` is none (a table holds fewer objects, see
/// `Arena::INDEX_FITS`). Half the size of an `Option<u32>`, and the manager keeps several per
/// device: its footprint is mostly these.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Link(u32);

impl Link {
    pub(crate) const NONE: Self = Self(u32::MAX);

    pub(crate) const fn to(index: u32) -> Self {
        Self(index)
    }

    pub(crate) const fn get(self) -> Option<u32> {
        if self.0 == u32::MAX {
            None
        } else {
            Some(self.0)
        }
    }
}

/// `Option`'s ways, so that a field can be a `Link` where it was an `Option<u32>`.
impl Link {
    pub(crate) const fn is_some(self) -> bool {
        self.0 != u32::MAX
    }

    pub(crate) const fn is_none(self) -> bool {
        self.0 == u32::MAX
    }

    pub(crate) fn is_some_and(self, f: impl FnOnce(u32) -> bool) -> bool {
        self.get().is_some_and(f)
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(u32) -> U) -> Option<U> {
        self.get().map(f)
    }

    pub(crate) fn filter(self, f: impl FnOnce(&u32) -> bool) -> Option<u32> {
        self.get().filter(f)
    }
}

impl PartialEq<Option<u32>> for Link {
    fn eq(&self, other: &Option<u32>) -> bool {
        self.get() == *other
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::NONE
    }
}

impl From<Option<u32>> for Link {
    fn from(index: Option<u32>) -> Self {
        index.map_or(Self::NONE, Self::to)
    }
}

impl core::fmt::Debug for Link {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.get().fmt(formatter)
    }
}

/// The links an element carries for one list it can be on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Links {
    previous: Link,
    next: Link,
}

impl Links {
    pub(crate) fn previous(&self) -> Option<u32> {
        self.previous.get()
    }

    pub(crate) fn next(&self) -> Option<u32> {
        self.next.get()
    }
}

/// Selects which of an element's `Links` a list is threaded through.
pub(crate) trait LinkField<T> {
    fn links(element: &T) -> &Links;
    fn links_mut(element: &mut T) -> &mut Links;
}

/// Head, tail and length of an intrusive list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct List {
    head: Link,
    tail: Link,
    pub(crate) len: u32,
}

impl List {
    pub(crate) const fn new() -> Self {
        Self {
            head: Link::NONE,
            tail: Link::NONE,
            len: 0,
        }
    }

    pub(crate) fn head(&self) -> Option<u32> {
        self.head.get()
    }

    pub(crate) fn tail(&self) -> Option<u32> {
        self.tail.get()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.get().is_none()
    }

    pub(crate) fn push_back<T, F: LinkField<T>, const N: usize>(
        &mut self,
        arena: &mut Arena<T, N>,
        index: u32,
        _field: F,
    ) {
        let links = F::links_mut(&mut arena[index]);
        links.previous = self.tail;
        links.next = Link::NONE;
        match self.tail.get() {
            Some(tail) => F::links_mut(&mut arena[tail]).next = Link::to(index),
            None => self.head = Link::to(index),
        }
        self.tail = Link::to(index);
        self.len += 1;
    }

    pub(crate) fn remove<T, F: LinkField<T>, const N: usize>(
        &mut self,
        arena: &mut Arena<T, N>,
        index: u32,
        _field: F,
    ) {
        let Links { previous, next } = *F::links(&arena[index]);
        match previous.get() {
            Some(before) => F::links_mut(&mut arena[before]).next = next,
            None => self.head = next,
        }
        match next.get() {
            Some(after) => F::links_mut(&mut arena[after]).previous = previous,
            None => self.tail = previous,
        }
        *F::links_mut(&mut arena[index]) = Links::default();
        self.len -= 1;
    }

    pub(crate) fn pop_front<T, F: LinkField<T>, const N: usize>(
        &mut self,
        arena: &mut Arena<T, N>,
        field: F,
    ) -> Option<u32> {
        let head = self.head.get()?;
        self.remove(arena, head, field);
        Some(head)
    }

    /// Iterates the list front to back. The list must not change during the iteration.
    pub(crate) fn iter<'a, T, F: LinkField<T>, const N: usize>(
        &self,
        arena: &'a Arena<T, N>,
        _field: F,
    ) -> ListIter<'a, T, F, N> {
        ListIter {
            arena,
            next: self.head.get(),
            field: core::marker::PhantomData,
        }
    }
}

pub(crate) struct ListIter<'a, T, F, const N: usize> {
    arena: &'a Arena<T, N>,
    next: Option<u32>,
    field: core::marker::PhantomData<F>,
}

impl<T, F: LinkField<T>, const N: usize> Iterator for ListIter<'_, T, F, N> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let current = self.next?;
        self.next = self
            .arena
            .get(current)
            .and_then(|element| F::links(element).next.get());
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Element {
        links: Links,
    }
    #[derive(Clone, Copy)]
    struct ElementLinks;
    impl LinkField<Element> for ElementLinks {
        fn links(element: &Element) -> &Links {
            &element.links
        }
        fn links_mut(element: &mut Element) -> &mut Links {
            &mut element.links
        }
    }

    #[test]
    fn stale_generation_does_not_alias_a_reused_slot() {
        let mut arena: Arena<u8, 2> = Arena::new();
        let (index, generation) = arena.insert(1).unwrap();
        arena.remove(index);
        let (reused, new_generation) = arena.insert(2).unwrap();
        assert_eq!(reused, index);
        assert_ne!(generation, new_generation);
        assert!(arena.resolve(index, generation).is_none());
        assert_eq!(arena.resolve(reused, new_generation), Some(&2));
    }

    #[test]
    fn full_arena_returns_the_value() {
        let mut arena: Arena<u8, 1> = Arena::new();
        arena.insert(1).unwrap();
        assert_eq!(arena.insert(7), Err(7));
    }

    #[test]
    fn list_push_remove_pop_keep_order() {
        let mut arena: Arena<Element, 4> = Arena::new();
        let mut list = List::new();
        for _ in 0..4 {
            let (index, _) = arena
                .insert(Element {
                    links: Links::default(),
                })
                .ok()
                .unwrap();
            list.push_back(&mut arena, index, ElementLinks);
        }
        list.remove(&mut arena, 1, ElementLinks);
        let order: std::vec::Vec<u32> = list.iter(&arena, ElementLinks).collect();
        assert_eq!(order, [0, 2, 3]);
        assert_eq!(list.pop_front(&mut arena, ElementLinks), Some(0));
        assert_eq!(list.len, 2);
    }
}
