//! Load tool for tongban. A placeholder crate until the load-testing issue builds it out.
fn main() {
    println!("tongban-load: not built yet; see the load-testing issue");
}
