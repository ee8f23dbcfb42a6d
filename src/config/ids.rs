//! How a service is named inside devstack: its `ServiceId`, its place in file order, and
//! `Services<T>`, one `T` per service read by that id (the config's services, the engine's state
//! and views, the logs' files and buffers, the lists of names the wire is read with). A
//! service's number is read as a `usize` only where something outside speaks positions: a row of
//! the terminal, a colour of a palette, a thread's name.

use std::ops::{Index, IndexMut};

/// A service of a stack: its place in `Config::services` (file order), as the engine, the
/// logs and every interface name it. Not a pid, a port or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub usize);

impl ServiceId {
    /// Its place in file order, for what speaks positions (a row of the terminal, a colour of a
    /// palette, a thread's name).
    pub fn index(self) -> usize {
        self.0
    }
}

/// One `T` per service of a stack, in file order, read by `ServiceId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services<T>(Vec<T>);

impl<T> Default for Services<T> {
    fn default() -> Self {
        Services(Vec::new())
    }
}

impl<T> Services<T> {
    /// A `T` for each of `count` services, made from its id.
    pub fn from_fn(count: usize, f: impl FnMut(ServiceId) -> T) -> Self {
        Services((0..count).map(ServiceId).map(f).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every service's id, in file order (borrowing nothing: the services may change meanwhile).
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = ServiceId> + use<T> {
        (0..self.0.len()).map(ServiceId)
    }

    /// Each service's id and `T`, in file order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (ServiceId, &T)> {
        self.0.iter().enumerate().map(|(i, t)| (ServiceId(i), t))
    }

    /// Each service's `T`, in file order.
    pub fn values(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.0.iter_mut()
    }

    /// The `T` of `id`, if the stack has such a service (an id from elsewhere: a wire line).
    pub fn get(&self, id: ServiceId) -> Option<&T> {
        self.0.get(id.0)
    }

    /// The first service whose `T` is so.
    pub fn find(&self, mut f: impl FnMut(&T) -> bool) -> Option<ServiceId> {
        self.0.iter().position(&mut f).map(ServiceId)
    }

    /// A `U` for each service, made from its `T`.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Services<U> {
        Services(self.0.iter().map(f).collect())
    }

    /// The `T`s in file order, for what reads them as a list (a verdict over views, the wire).
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
}

impl<T> From<Vec<T>> for Services<T> {
    /// The services in file order.
    fn from(v: Vec<T>) -> Self {
        Services(v)
    }
}

impl<T> FromIterator<T> for Services<T> {
    /// The services in file order.
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Services(iter.into_iter().collect())
    }
}

impl<T> IntoIterator for Services<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T> Index<ServiceId> for Services<T> {
    type Output = T;

    fn index(&self, id: ServiceId) -> &T {
        &self.0[id.0]
    }
}

impl<T> IndexMut<ServiceId> for Services<T> {
    fn index_mut(&mut self, id: ServiceId) -> &mut T {
        &mut self.0[id.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_read_by_id_in_file_order() {
        let mut s: Services<&str> = vec!["db", "api", "web"].into();
        assert_eq!(s[ServiceId(1)], "api");
        s[ServiceId(2)] = "www";
        let ids: Vec<ServiceId> = s.ids().collect();
        assert_eq!(ids, [ServiceId(0), ServiceId(1), ServiceId(2)]);
        let pairs: Vec<(ServiceId, &&str)> = s.iter().collect();
        assert_eq!(pairs[2], (ServiceId(2), &"www"));
        assert_eq!(s.find(|n| *n == "api"), Some(ServiceId(1)));
        assert_eq!(s.get(ServiceId(3)), None);
        assert_eq!(s.map(|n| n.len()).as_slice(), [2, 3, 3]);
        assert_eq!(
            Services::from_fn(2, |id| id.index() * 10).as_slice(),
            [0, 10]
        );
    }
}
