//! The graph IR: a petgraph [`DiGraph`] whose nodes are operations and whose
//! edges are tensors (shape, element type, quantisation).
//!
//! Today's networks are chains: one [`Node::Input`], then [`Node::Layer`]s
//! (dense/gemm or matmul), then one [`Node::Output`]. Every edge carries the
//! tensor flowing along it, `[batch, features]`. [`Graph::check_shapes`] is the
//! shape-check pass; it names the layer at fault.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::quant::Quant;
use crate::tensor::DType;
use crate::CompileError;

/// The network input: `batch x features` int8.
#[derive(Debug, Clone, PartialEq)]
pub struct InputNode {
    pub name: String,
    pub features: usize,
    pub quant: Quant,
    /// `batch x features` values, row-major.
    pub data: Vec<i8>,
}

/// Which workload-level operation a layer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `dense` / `gemm`: `x W + b`, requantised (or int32).
    Dense,
    /// `matmul`: `A B`, no bias.
    Matmul,
}

/// What a layer outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputKind {
    /// int8, requantised to these parameters.
    Int8(Quant),
    /// int32 accumulators, in units of `input scale * weight scale`.
    Int32,
}

impl OutputKind {
    pub fn dtype(&self) -> DType {
        match self {
            OutputKind::Int8(_) => DType::I8,
            OutputKind::Int32 => DType::I32,
        }
    }
}

/// A dense/gemm or matmul layer: `y[M x N] = x[M x K] W[K x N] (+ b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
    pub in_features: usize,
    pub out_features: usize,
    /// `in_features x out_features` int8, row-major (`w[k][n]`).
    pub weights: Vec<i8>,
    /// Symmetric: the zero point is always 0.
    pub weight_quant: Quant,
    /// `out_features` int32 values in units of `input scale * weight scale`.
    pub bias: Option<Vec<i32>>,
    pub output: OutputKind,
    pub relu: bool,
}

/// A graph output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputNode {
    pub name: String,
}

/// An operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Input(InputNode),
    Layer(Layer),
    Output(OutputNode),
}

impl Node {
    pub fn name(&self) -> &str {
        match self {
            Node::Input(n) => &n.name,
            Node::Layer(n) => &n.name,
            Node::Output(n) => &n.name,
        }
    }
}

/// A tensor on an edge: `[batch, features]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: [usize; 2],
    pub dtype: DType,
    /// For int32 tensors: scale `input scale * weight scale`, zero point 0.
    pub quant: Quant,
}

/// A network.
#[derive(Debug, Clone)]
pub struct Graph {
    pub graph: DiGraph<Node, TensorInfo>,
    /// Rows of every tensor (M).
    pub batch: usize,
}

impl Graph {
    /// Builds the chain `input -> layers... -> output`, deriving each edge from
    /// its producer. Nothing is checked here; see [`Graph::check_shapes`].
    pub fn chain(batch: usize, input: InputNode, layers: Vec<Layer>, output: &str) -> Graph {
        let mut g = DiGraph::new();
        let mut info = TensorInfo {
            name: input.name.clone(),
            shape: [batch, input.features],
            dtype: DType::I8,
            quant: input.quant,
        };
        let mut prev = g.add_node(Node::Input(input));
        for layer in layers {
            let next = TensorInfo {
                name: layer.name.clone(),
                shape: [batch, layer.out_features],
                dtype: layer.output.dtype(),
                quant: match layer.output {
                    OutputKind::Int8(q) => q,
                    OutputKind::Int32 => Quant {
                        scale: info.quant.scale * layer.weight_quant.scale,
                        zero_point: 0,
                    },
                },
            };
            let node = g.add_node(Node::Layer(layer));
            g.add_edge(prev, node, info);
            prev = node;
            info = next;
        }
        info.name = output.to_string();
        let out = g.add_node(Node::Output(OutputNode {
            name: output.to_string(),
        }));
        g.add_edge(prev, out, info);
        Graph { graph: g, batch }
    }

    /// The nodes in execution order; an error unless the graph is one chain
    /// from a single input to a single output.
    pub fn order(&self) -> Result<Vec<NodeIndex>, CompileError> {
        let bad = |m: &str| CompileError::Invalid {
            context: "graph".into(),
            message: m.into(),
        };
        let inputs: Vec<_> = self
            .graph
            .node_indices()
            .filter(|&i| matches!(self.graph[i], Node::Input(_)))
            .collect();
        let [start] = inputs[..] else {
            return Err(bad("needs exactly one input node"));
        };
        let mut order = vec![start];
        let mut cur = start;
        loop {
            let mut next = self.graph.neighbors_directed(cur, Direction::Outgoing);
            let Some(n) = next.next() else { break };
            if next.next().is_some() {
                return Err(bad(&format!(
                    "node {} feeds several nodes; only chains are supported",
                    self.graph[cur].name()
                )));
            }
            if self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .count()
                != 1
            {
                return Err(bad(&format!(
                    "node {} has several inputs; only chains are supported",
                    self.graph[n].name()
                )));
            }
            order.push(n);
            cur = n;
            if order.len() > self.graph.node_count() {
                return Err(bad("the graph has a cycle"));
            }
        }
        if order.len() != self.graph.node_count() {
            return Err(bad("some nodes are not reachable from the input"));
        }
        if !matches!(self.graph[cur], Node::Output(_)) {
            return Err(bad("the chain does not end in an output node"));
        }
        if order.len() < 3 {
            return Err(bad("the network has no layer"));
        }
        for &i in &order[1..order.len() - 1] {
            if !matches!(self.graph[i], Node::Layer(_)) {
                return Err(bad(&format!(
                    "node {} in the middle of the chain is not a layer",
                    self.graph[i].name()
                )));
            }
        }
        Ok(order)
    }

    fn edge_into(&self, n: NodeIndex) -> &TensorInfo {
        let e = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .next()
            .expect("order() checked every non-input node has one input");
        e.weight()
    }

    fn edge_out_of(&self, n: NodeIndex) -> &TensorInfo {
        let e = self
            .graph
            .edges_directed(n, Direction::Outgoing)
            .next()
            .expect("order() checked every non-output node has one output");
        e.weight()
    }

    /// The input node.
    pub fn input(&self) -> Result<&InputNode, CompileError> {
        let order = self.order()?;
        match &self.graph[order[0]] {
            Node::Input(i) => Ok(i),
            _ => unreachable!("order() starts at the input"),
        }
    }

    /// The layers in order, each with the tensor it reads.
    pub fn layers(&self) -> Result<Vec<(&Layer, &TensorInfo)>, CompileError> {
        let order = self.order()?;
        Ok(order
            .iter()
            .filter_map(|&i| match &self.graph[i] {
                Node::Layer(l) => Some((l, self.edge_into(i))),
                _ => None,
            })
            .collect())
    }

    /// The graph outputs: (name, tensor).
    pub fn outputs(&self) -> Result<Vec<&TensorInfo>, CompileError> {
        let order = self.order()?;
        let last = *order.last().expect("order() is never empty");
        Ok(vec![self.edge_into(last)])
    }

    /// The shape-check pass: every edge agrees with its producer and its
    /// consumer, every parameter has the size its layer declares, names are
    /// unique. Errors name the layer (or the input) at fault.
    pub fn check_shapes(&self) -> Result<(), CompileError> {
        let order = self.order()?;
        let batch = self.batch;
        if batch == 0 {
            return Err(CompileError::Invalid {
                context: "workload".into(),
                message: "batch must be at least 1".into(),
            });
        }
        let mut names: Vec<&str> = Vec::new();
        for &i in &order {
            let name = self.graph[i].name();
            if names.contains(&name) {
                return Err(CompileError::Invalid {
                    context: format!("node {name}"),
                    message:
                        "the name is used twice (inputs, layers and the output need distinct names)"
                            .into(),
                });
            }
            names.push(name);
        }
        let mut prev_desc = String::new();
        for &i in &order {
            match &self.graph[i] {
                Node::Input(inp) => {
                    let ctx = |message: String| CompileError::Invalid {
                        context: format!("input {}", inp.name),
                        message,
                    };
                    if inp.features == 0 {
                        return Err(ctx("features must be at least 1".into()));
                    }
                    let want = batch * inp.features;
                    if inp.data.len() != want {
                        return Err(ctx(format!(
                            "data has {} values, expected batch {batch} x features {} = {want}",
                            inp.data.len(),
                            inp.features
                        )));
                    }
                    check_edge(self.edge_out_of(i), [batch, inp.features], DType::I8, &ctx)?;
                    prev_desc = format!("the input {}'s {} features", inp.name, inp.features);
                }
                Node::Layer(l) => {
                    let err = |message: String| CompileError::Layer {
                        layer: l.name.clone(),
                        message,
                    };
                    let x = self.edge_into(i);
                    if x.dtype != DType::I8 {
                        return Err(err(format!(
                            "its input {} is {}; a layer reads int8 (only the last layer may output int32)",
                            x.name, x.dtype
                        )));
                    }
                    if x.shape[0] != batch {
                        return Err(err(format!(
                            "input {} has {} rows, expected the batch {batch}",
                            x.name, x.shape[0]
                        )));
                    }
                    if l.in_features != x.shape[1] {
                        return Err(err(format!(
                            "in_features {} does not match {prev_desc}",
                            l.in_features
                        )));
                    }
                    if l.out_features == 0 {
                        return Err(err("out_features must be at least 1".into()));
                    }
                    let want = l.in_features * l.out_features;
                    if l.weights.len() != want {
                        return Err(err(format!(
                            "weights has {} values, expected in_features {} x out_features {} = {want}",
                            l.weights.len(),
                            l.in_features,
                            l.out_features
                        )));
                    }
                    if let Some(b) = &l.bias {
                        if b.len() != l.out_features {
                            return Err(err(format!(
                                "bias has {} values, expected out_features {}",
                                b.len(),
                                l.out_features
                            )));
                        }
                    }
                    if l.relu && l.output == OutputKind::Int32 {
                        return Err(err("relu needs an int8 output".into()));
                    }
                    check_edge(
                        self.edge_out_of(i),
                        [batch, l.out_features],
                        l.output.dtype(),
                        &err,
                    )?;
                    prev_desc = format!("the previous layer's {} outputs", l.out_features);
                }
                Node::Output(_) => {}
            }
        }
        Ok(())
    }
}

fn check_edge(
    e: &TensorInfo,
    shape: [usize; 2],
    dtype: DType,
    err: &dyn Fn(String) -> CompileError,
) -> Result<(), CompileError> {
    if e.shape != shape || e.dtype != dtype {
        return Err(err(format!(
            "output tensor {} is {:?} {}, expected {:?} {}",
            e.name, e.shape, e.dtype, shape, dtype
        )));
    }
    Ok(())
}
